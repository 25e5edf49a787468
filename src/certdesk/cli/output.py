"""Printing for people (rich tables, their language) and for scripts (`--json`)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from certdesk.domain.errors import CertdeskError
from certdesk.domain.messages import Locale

console = Console()
errors = Console(stderr=True)

# Exit status by the HTTP-like status of the refusal, so scripts can tell kinds apart.
EXIT_CODES = {400: 2, 409: 3, 410: 3, 404: 4, 401: 5, 423: 5, 403: 6, 502: 7, 503: 7}


def locale() -> Locale:
    for var in ("CERTDESK_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "zh-CN" if value.lower().startswith("zh") else "en"
    return "en"


def say(en: str, zh: str, *, to_stderr: bool = False) -> None:
    # markup off: names and codes are user data, "[x]" must print as it is
    out = errors if to_stderr else console
    out.print(zh if locale() == "zh-CN" else en, markup=False, highlight=False)


def progress(en: str, zh: str) -> None:
    """Steps of long work go to stderr, so `--json` output on stdout stays parseable."""
    say(en, zh, to_stderr=True)


def warn(en: str, zh: str) -> None:
    errors.print(
        Text.assemble(("warning", "bold yellow"), " " + (zh if locale() == "zh-CN" else en)),
        highlight=False,
    )


def fail(exc: CertdeskError) -> int:
    """Print a refusal (both languages when asked for JSON) and return the exit status."""
    errors.print(
        Text.assemble(("error", "bold red"), f" [{exc.code}] {exc.message(locale())}"),
        highlight=False,
    )
    return EXIT_CODES.get(exc.status, 1)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, to_stderr: bool = False
) -> None:
    out = Table(title=title)
    for col in columns:
        out.add_column(col)
    for row in rows:
        out.add_row(*(Text("" if v is None else str(v)) for v in row))
    (errors if to_stderr else console).print(out)


def ask_secret(prompt: str, confirm: bool = False) -> str:
    """Ask for a PIN or passphrase on the terminal; without one, say which option to give."""
    if not sys.stdin.isatty():
        raise CertdeskError("input.invalid", detail=f"{prompt}: not given and no terminal to ask")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def ask_yes(prompt: str, option: str) -> bool:
    """A yes/no question; scripts answer it with `option` instead (there is no terminal)."""
    if not sys.stdin.isatty():
        raise CertdeskError("input.invalid", detail=f"{prompt}: no terminal to ask; give {option}")
    return bool(typer.confirm(prompt, default=False))
