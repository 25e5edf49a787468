"""Printing for people (rich tables, their language) and for scripts (`--json`)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection, Sequence
from typing import Any

import typer
from rich.cells import cell_len
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
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    to_stderr: bool = False,
    keep: Collection[str] = ("serial", "id", "token", "code"),
) -> None:
    """A table for people. Identifiers (the `keep` columns) are never cut or wrapped, so they
    can be copied: when the table does not fit the terminal (e.g. 80 columns), each row is
    printed as a block of `field: value` lines instead."""
    out = errors if to_stderr else console
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    grid = Table(title=title)
    for i, col in enumerate(columns):
        if col in keep:
            widest = max((cell_len(row[i]) for row in cells), default=0)
            grid.add_column(col, no_wrap=True, min_width=max(widest, cell_len(col)))
        else:
            grid.add_column(col, no_wrap=True)
    for row in cells:
        grid.add_row(*(Text(v) for v in row))
    natural = out.measure(grid, options=out.options.update_width(sys.maxsize)).maximum
    if natural <= out.width:
        out.print(grid)
        return
    out.print(Text(title, style="bold"), highlight=False)
    for row in cells:
        _field_lines(out, list(zip(columns, row, strict=True)))
        out.print()


def fields(title: str, rows: Sequence[tuple[str, Any]], *, to_stderr: bool = False) -> None:
    """One record as `field: value` lines (readable at any width; values are never cut)."""
    out = errors if to_stderr else console
    out.print(Text(title, style="bold"), highlight=False)
    _field_lines(out, rows)


def _field_lines(out: Console, rows: Sequence[tuple[str, Any]]) -> None:
    width = max((cell_len(name) for name, _ in rows), default=0)
    for name, value in rows:
        pad = " " * (width - cell_len(name))
        text = "" if value is None else str(value)
        # soft_wrap: a long value runs on (the terminal wraps it); nothing is cut or split
        out.print(Text(f"  {name}:{pad} {text}"), highlight=False, soft_wrap=True)


REPEAT = "Repeat for confirmation / 请再次输入以确认"
TRIES = 3


def ask_secret(prompt: str, confirm: bool = False) -> str:
    """Ask for a PIN or passphrase on the terminal; without one, say which option to give.

    With `confirm` it is asked twice (both prompts in both languages; Click's own confirmation
    prompt is English only), up to three times if the two entries differ."""
    if not sys.stdin.isatty():
        raise CertdeskError("input.invalid", detail=f"{prompt}: not given and no terminal to ask")
    for _ in range(TRIES):
        first = str(typer.prompt(prompt, hide_input=True))
        if not confirm or first == str(typer.prompt(REPEAT, hide_input=True)):
            return first
        warn("The two entries differ; try again.", "两次输入不一致，请重新输入。")
    raise CertdeskError("cli.entries_differ", tries=TRIES)


def ask_yes(prompt: str, option: str, action: str) -> bool:
    """A yes/no question; scripts answer it with `option` instead (there is no terminal)."""
    if not sys.stdin.isatty():
        raise CertdeskError("cli.confirmation_needed", action=action, option=option)
    return bool(typer.confirm(prompt, default=False))


def confirm(prompt: str, yes: bool, action: str, option: str = "--yes") -> None:
    """Ask before a destructive action unless `yes`; refuse without a terminal or on "no"."""
    if not yes and not ask_yes(prompt, option, action):
        raise CertdeskError("cli.cancelled")
