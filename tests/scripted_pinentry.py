"""A pinentry that speaks Assuan like GnuPG's, for the tests: the PIN comes from the file
$PINENTRY_PIN_FILE (read at each GETPIN; with several lines, the n-th GETPIN answers the n-th
line, the last one again after that), every command is appended to $PINENTRY_LOG, and
CONFIRM is refused (cancelled) when the file $PINENTRY_PIN_FILE.cancel exists.

Run as a program (`scripted_pinentry.write(folder)` makes an executable with this Python).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from urllib.parse import quote, unquote

CANCELED = "ERR 83886179 Operation cancelled <Pinentry>"


def main() -> None:
    pin_file = Path(os.environ["PINENTRY_PIN_FILE"])
    log = Path(os.environ["PINENTRY_LOG"])
    print("OK Pleased to meet you", flush=True)
    asked = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        with log.open("a", encoding="utf-8") as out:
            out.write(unquote(line) + "\n")
        command = line.split(" ", 1)[0]
        if command == "GETPIN":
            pins = pin_file.read_text(encoding="utf-8").split() or [""]
            pin = pins[min(asked, len(pins) - 1)]
            asked += 1
            print(f"D {quote(pin)}\nOK", flush=True)
        elif command == "CONFIRM" and Path(f"{pin_file}.cancel").exists():
            print(CANCELED, flush=True)
        else:
            print("OK", flush=True)
        if command == "BYE":
            return


def write(folder: Path) -> Path:
    """An executable pinentry in `folder` that runs this script with the test's Python."""
    program = folder / "pinentry-scripted"
    program.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} "$@"\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


if __name__ == "__main__":
    main()
