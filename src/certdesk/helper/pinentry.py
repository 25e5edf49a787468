"""The PIN dialog: GnuPG's `pinentry` programs over the Assuan protocol (pinentry-gnome3, -qt,
-curses, pinentry-w32 on Windows), so the PIN is typed in the helper's own window, never in the
page, and no GUI is written here.

Assuan is line based: the client sends `COMMAND args`, the server answers data lines
(`D value`, percent-escaped), status lines (`S …`, `#` comments) and ends with `OK` or
`ERR code text`. Only the few commands a PIN dialog needs are used.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from urllib.parse import quote, unquote

from certdesk.domain.errors import CertdeskError

ERR_CANCELED = 83886179  # GPG_ERR_CANCELED with the pinentry source (gpg-error)


def pinentry_program(configured: str) -> str:
    """`$CERTDESK_PINENTRY`, else the client settings', else `pinentry` on the PATH."""
    return os.environ.get("CERTDESK_PINENTRY") or configured or "pinentry"


def _escape(text: str) -> str:
    """Assuan's escaping: %, CR and LF (and, for safety, every control character)."""
    return "".join(quote(c, safe="") if c in "%\r\n" or ord(c) < 0x20 else c for c in text)


@dataclass
class Dialog:
    """What one dialog shows: title, description (the origin and the registered data), prompt."""

    title: str
    description: str
    prompt: str = "PIN"
    error: str = ""


class Pinentry:
    """One pinentry process for one operation (opened as a context manager)."""

    def __init__(self, program: str) -> None:
        self.program = program
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Pinentry:
        try:
            self._proc = subprocess.Popen(
                [self.program],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise self._failed(str(exc)) from None
        self._answer()  # the greeting: "OK Pleased to meet you"
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(CertdeskError):
            self._command("BYE")
        self._proc.kill()
        self._proc.wait()

    def _failed(self, detail: str) -> CertdeskError:
        return CertdeskError("helper.pinentry_failed", program=self.program, detail=detail)

    def _answer(self) -> str:
        """Read to OK/ERR; the data lines, unescaped, joined."""
        assert self._proc is not None and self._proc.stdout is not None
        data = []
        while True:
            line = self._proc.stdout.readline().decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                raise self._failed("the program ended")
            if line.startswith("D "):
                data.append(unquote(line[2:]))
            elif line == "OK" or line.startswith("OK "):
                return "".join(data)
            elif line.startswith("ERR "):
                code = line.split(" ", 2)[1]
                if code.isdigit() and int(code) & 0xFFFF == ERR_CANCELED & 0xFFFF:
                    raise CertdeskError("helper.pin_cancelled")
                raise self._failed(line)

    def _command(self, line: str) -> str:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(line.encode("utf-8") + b"\n")
            self._proc.stdin.flush()
        except OSError as exc:
            raise self._failed(str(exc)) from None
        return self._answer()

    def _show(self, dialog: Dialog) -> None:
        self._command(f"SETTITLE {_escape(dialog.title)}")
        self._command(f"SETDESC {_escape(dialog.description)}")
        self._command(f"SETPROMPT {_escape(dialog.prompt)}")
        if dialog.error:
            self._command(f"SETERROR {_escape(dialog.error)}")

    def get_pin(self, dialog: Dialog) -> str:
        self._show(dialog)
        return self._command("GETPIN")

    def confirm(self, dialog: Dialog) -> None:
        """OK or a `helper.pin_cancelled` refusal (the holder said the data is wrong)."""
        self._show(dialog)
        self._command("CONFIRM")
