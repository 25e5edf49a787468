"""The holder's side (token, client, the holder's commands) never loads the server's side."""

from __future__ import annotations

import subprocess
import sys

SERVER_SIDE = ("certdesk.services", "certdesk.store", "certdesk.web", "certdesk.ca", "sqlalchemy")
HOLDER_SIDE = (
    "certdesk.token.device",
    "certdesk.token.inventory",
    "certdesk.token.pin",
    "certdesk.client.renewal",
    "certdesk.client.settings",
    "certdesk.cli.holder",
    "certdesk.cli.main",  # what `certdesk renew` loads before it runs
)


def test_holder_side_imports_nothing_of_the_server() -> None:
    probe = (
        "import importlib, sys\n"
        f"for name in {HOLDER_SIDE!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({SERVER_SIDE!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
