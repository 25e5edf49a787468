"""Whole-database copies: a consistent snapshot of the live database and putting one back.

SQLite: the online backup API (pages copied under a read transaction: a consistent state even
while certdesk writes). PostgreSQL: `pg_dump --format=custom` and `pg_restore --clean`, limited to
the schema when the URL sets `search_path`.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import make_url

from certdesk.domain.errors import CertdeskError
from certdesk.store.db import Database


def take(db: Database, target: Path) -> str:
    """Copy the live database to `target`; returns the kind of copy ("sqlite" or "pg_dump")."""
    if not db.is_sqlite:
        _run("pg_dump", "--format=custom", f"--file={target}", *_pg_args(db.url))
        return "pg_dump"
    raw = db.engine.raw_connection()
    try:
        source = raw.driver_connection
        assert isinstance(source, sqlite3.Connection)
        _copy(source, target)
    finally:
        raw.close()
    return "sqlite"


def put_back(url: str, backup: Path) -> None:
    """Replace the database at `url` by the copy `backup` (no process may be using it)."""
    if make_url(url).get_backend_name() != "sqlite":
        _run(
            "pg_restore",
            "--clean",
            "--if-exists",
            "--single-transaction",
            *_pg_args(url),
            str(backup),
        )
        return
    database = make_url(url).database
    assert database, "an SQLite database file"
    target = Path(database)
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):  # of the database being replaced
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    source = sqlite3.connect(backup)
    try:
        _copy(source, target)
    finally:
        source.close()


def _copy(source: sqlite3.Connection, target: Path) -> None:
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()


def _pg_args(url: str) -> list[str]:
    """libpq connection for pg_dump/pg_restore, and the schema when the URL sets search_path."""
    parsed = make_url(url)
    options = parsed.query.get("options")
    schema: list[str] = []
    if isinstance(options, str) and "search_path=" in unquote(options):
        schema = ["--schema", unquote(options).split("search_path=", 1)[1].split()[0]]
    plain = parsed.set(drivername="postgresql", query={})
    return [f"--dbname={plain.render_as_string(hide_password=False)}", *schema]


def _run(tool: str, *args: str) -> None:
    if shutil.which(tool) is None:
        raise CertdeskError("backup.tool_missing", tool=tool)
    done = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CertdeskError("backup.failed", tool=tool, detail=done.stderr.strip()[-500:])
