"""The layers of docs/design.md: every import between certdesk's packages follows an allowed arrow.

Three checks. The static one parses every module under src/certdesk with `ast` and checks each
import of certdesk against ALLOWED: imports at the top, inside functions and under
`if TYPE_CHECKING:` all count (a type named in an annotation is still a dependency on its layer,
and no module needs an exception today). The second, with the same parser, keeps the SQL of the
use cases in store/: a service imports neither the tables nor SQLAlchemy's query building. The
run-time one loads the holder's side in a fresh interpreter and looks at what came along,
third-party libraries included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Module -> layer: the longest prefix that matches decides.
LAYER_OF = {
    "certdesk": "root",  # certdesk/__init__.py: the version, nothing else
    "certdesk.config": "config",
    "certdesk.domain": "domain",
    "certdesk.ca": "ca",
    "certdesk.store": "store",
    "certdesk.services": "services",
    "certdesk.web": "web",
    "certdesk.cli": "cli",
    "certdesk.cli.holder": "holder-cli",
    "certdesk.cli.output": "holder-cli",  # the holder's commands print with it: on their side
    "certdesk.token": "token",
    "certdesk.client": "client",
    "certdesk.helper": "helper",  # the browser's native messaging host (holder side)
}
# Shared leaves: domain (pure), config (reads certdesk.toml; imports domain only), the root.
_LEAVES = frozenset({"domain", "config", "root"})
# From layer -> the other layers it may import (its own layer always).
ALLOWED: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "root": frozenset(),
    "config": frozenset({"domain"}),
    "ca": _LEAVES | {"token"},  # the HSM signer talks PKCS#11 through token/
    "store": _LEAVES,
    # token: enrolment onto a token at the office's desk is a method of services/enrolment/.
    "services": _LEAVES | {"ca", "store", "token"},
    "web": _LEAVES | {"services"},
    # web: `certdesk serve` starts the server.
    "cli": _LEAVES | {"services", "web", "holder-cli"},
    "token": _LEAVES,
    "client": _LEAVES | {"token"},
    "helper": _LEAVES | {"token", "client"},
    "holder-cli": _LEAVES | {"token", "client", "helper"},
}
# Refused arrows that stay for now: (file, module it imports from), each with its reason.
KNOWN: set[tuple[str, str]] = set()


def layer_of(module: str) -> str | None:
    """The layer of a module of certdesk; None for anything else (stdlib, third-party)."""
    best = None
    for prefix in LAYER_OF:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    return None if best is None else LAYER_OF[best]


@dataclass(frozen=True)
class Arrow:
    """One import of one layer by another: where it is, which layers, and the statement."""

    path: str
    line: int
    source: str
    target: str
    module: str  # what the statement imports from (KNOWN names it)
    statement: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} -> {self.target} ({self.statement})"


def _imports(node: ast.Import | ast.ImportFrom, package: str) -> list[tuple[str, str, str]]:
    """(full name, module, statement) per name; `from a import b` reaches a.b, a module or not."""
    if isinstance(node, ast.Import):
        return [(alias.name, alias.name, f"import {alias.name}") for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
    return [(f"{base}.{a.name}", base, f"from {base} import {a.name}") for a in node.names]


def _each_import(source: str, module: str, path: str) -> Iterator[tuple[int, str, str, str]]:
    """(line, full name, module, statement) of every import in `source` (module `module`, in
    file `path`)."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name, imported, statement in _imports(node, package):
                yield node.lineno, name, imported, statement


def refused_arrows(source: str, module: str, path: str) -> list[Arrow]:
    """Each import in `source` (module `module`, in file `path`) that ALLOWED does not allow."""
    here = layer_of(module)
    assert here is not None, f"{path}: {module} has no layer in LAYER_OF"
    found = []
    for line, name, imported, statement in _each_import(source, module, path):
        there = layer_of(name)
        if there is not None and there != here and there not in ALLOWED[here]:
            found.append(Arrow(path, line, here, there, imported, statement))
    return sorted(found, key=lambda arrow: arrow.line)


def _modules() -> list[tuple[str, str]]:
    """(module name, file) for every module of certdesk."""
    out = []
    for file in sorted((SRC / "certdesk").rglob("*.py")):
        parts = file.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, file.relative_to(SRC.parent).as_posix()))
    return out


def test_every_import_follows_an_allowed_arrow() -> None:
    arrows = [
        arrow
        for module, path in _modules()
        for arrow in refused_arrows((SRC.parent / path).read_text(), module, path)
    ]
    refused = [str(a) for a in arrows if (a.path, a.module) not in KNOWN]
    assert not refused, "refused arrows (docs/design.md, Layers):\n" + "\n".join(refused)
    stale = KNOWN - {(a.path, a.module) for a in arrows}
    assert not stale, f"fixed, so remove from KNOWN: {stale}"


def test_the_checker_finds_refused_arrows() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import sqlalchemy\n"
        "from certdesk.services.access import Access\n"
        "if TYPE_CHECKING:\n"
        "    from certdesk.cli import main\n"
        "def f() -> None:\n"
        "    from ...store import tables\n"  # certdesk.store
    )
    found = refused_arrows(source, "certdesk.web.portal.guard", "src/certdesk/web/portal/guard.py")
    assert [str(a) for a in found] == [
        "src/certdesk/web/portal/guard.py:5: web -> cli (from certdesk.cli import main)",
        "src/certdesk/web/portal/guard.py:7: web -> store (from certdesk.store import tables)",
    ]
    domain = refused_arrows(
        "import certdesk.config\n", "certdesk.domain.x", "src/certdesk/domain/x.py"
    )
    assert [str(a) for a in domain] == [
        "src/certdesk/domain/x.py:1: domain -> config (import certdesk.config)"
    ]
    holder = "from certdesk.ca.keys import KeyType\n"
    client = refused_arrows(holder, "certdesk.client.renewal", "src/certdesk/client/renewal.py")
    assert [(a.source, a.target, a.line) for a in client] == [("client", "ca", 1)]


# Of SQLAlchemy a service takes only the connection it passes to store/ and an error it answers.
SERVICES_FROM_SQLALCHEMY = frozenset({"sqlalchemy.Connection", "sqlalchemy.exc.IntegrityError"})


def sql_imports(source: str, module: str, path: str) -> list[str]:
    """What `source` imports of the tables or of SQLAlchemy beyond SERVICES_FROM_SQLALCHEMY."""
    found = [
        (line, f"{path}:{line}: {statement}")
        for line, name, _module, statement in _each_import(source, module, path)
        if name.startswith("certdesk.store.tables")
        or (name.partition(".")[0] == "sqlalchemy" and name not in SERVICES_FROM_SQLALCHEMY)
    ]
    return [text for _line, text in sorted(found)]


def test_services_leave_sql_to_the_store() -> None:
    found = {
        path: lines
        for module, path in _modules()
        if layer_of(module) == "services"
        and (lines := sql_imports((SRC.parent / path).read_text(), module, path))
    }
    refused = [line for lines in found.values() for line in lines]
    assert not refused, "SQL belongs in store/ (docs/design.md, Layers):\n" + "\n".join(refused)


def test_the_sql_check_finds_queries_and_tables() -> None:
    source = (
        "from sqlalchemy import Connection, select\n"
        "from sqlalchemy.exc import IntegrityError\n"
        "from ..store import tables\n"
        "import sqlalchemy\n"
    )
    path = "src/certdesk/services/x.py"
    assert sql_imports(source, "certdesk.services.x", path) == [
        f"{path}:1: from sqlalchemy import select",
        f"{path}:3: from certdesk.store import tables",
        f"{path}:4: import sqlalchemy",
    ]


SERVER_SIDE = ("certdesk.services", "certdesk.store", "certdesk.web", "certdesk.ca", "sqlalchemy")
HOLDER_SIDE = (
    "certdesk.token.device",
    "certdesk.token.inventory",
    "certdesk.token.pin",
    "certdesk.client.renewal",
    "certdesk.client.settings",
    "certdesk.helper.host",
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
