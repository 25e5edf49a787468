"""Backup and restore of the database; the journal (services/journal.py) fills in what happened
after the backup, so a restore forgets no certificate and no revocation.

SQLite: a consistent snapshot of the live database through SQLite's online backup API.
PostgreSQL: `pg_dump --format=custom` (and `pg_restore --clean`), when installed; base backups
with WAL archiving are the alternative documented in docs/deployment.md.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import make_url

from certdesk.config import Config
from certdesk.domain.clock import Clock, SystemClock
from certdesk.domain.errors import CertdeskError
from certdesk.services import journal
from certdesk.services.context import Context
from certdesk.store import audit
from certdesk.store.db import Database

LOCK_FILE = "serve.lock"


@dataclass(frozen=True)
class Backup:
    path: Path
    seq: int  # the audit record the backup ends with (PostgreSQL: at least this one)
    kind: str  # "sqlite" | "pg_dump"


@dataclass(frozen=True)
class Restored:
    backup: Path | None
    seq: int  # the head after the backup was put back, before replay
    replayed: journal.Replayed
    refusal: CertdeskError | None  # what still stops writes (None: the server may start)
    loss_accepted: str | None  # the new journal's id, when the operator accepted a loss


def hold_server_lock(config: Config) -> int:
    """Held by `certdesk serve` for its life, so `restore` can tell a server is running."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(config.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CertdeskError("server.already_running", path=str(config.data_dir)) from None
    return fd


def _backup_name(dest: Path, now: dt.datetime, suffix: str) -> Path:
    if dest.is_dir() or str(dest).endswith(os.sep):
        dest.mkdir(parents=True, exist_ok=True)
        return dest / f"certdesk-{now.strftime('%Y%m%dT%H%M%SZ')}{suffix}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def take_backup(ctx: Context, dest: Path) -> Backup:
    """A consistent snapshot of the live database at `dest` (a directory: a new file in it)."""
    now = ctx.clock.now()
    if ctx.db.is_sqlite:
        target = _backup_name(dest, now, ".db")
        if target.exists():
            raise CertdeskError("backup.exists", path=str(target))
        raw = ctx.db.engine.raw_connection()
        try:
            source = raw.driver_connection
            assert isinstance(source, sqlite3.Connection)
            with sqlite3.connect(target) as copy:
                source.backup(copy)
            copy.close()
        finally:
            raw.close()
        copied = Database(f"sqlite:///{target}")
        try:
            with copied.read() as conn:
                seq, _ = audit.head(conn)
        finally:
            copied.dispose()
        return Backup(target, seq, "sqlite")
    target = _backup_name(dest, now, ".pgdump")
    with ctx.db.read() as conn:
        seq, _ = audit.head(conn)
    _run("pg_dump", "--format=custom", f"--file={target}", *_pg_args(ctx.db.url))
    return Backup(target, seq, "pg_dump")


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


def restore(
    config: Config,
    backup: Path | None,
    actor: str,
    *,
    accept_loss: bool,
    clock: Clock | None = None,
) -> Restored:
    """Put `backup` back (None: keep the database as it is), replay the journal beyond it, and
    say what still stops the server; with `accept_loss`, the operator accepts it (audited)."""
    clock = clock or SystemClock()
    lock = hold_server_lock(config)  # refused while `certdesk serve` runs on this data
    try:
        if backup is not None:
            if not backup.is_file():
                raise CertdeskError("backup.not_found", path=str(backup))
            _put_back(config, backup)
        from certdesk.store.migrate import upgrade

        db = Database(config.database_url, sqlite_synchronous=config.database.sqlite_synchronous)
        try:
            upgrade(db)
            with db.read() as conn:
                seq, _ = audit.head(conn)
            replayed = journal.replay(config, db, from_backup=backup is not None)
            journal.attach(config, db, clock, actor)
            refusal = db.refusal
            accepted = journal.accept_loss(config, db, clock, actor) if accept_loss else None
            if accepted is not None:
                refusal = None
        finally:
            db.dispose()
    finally:
        os.close(lock)
    return Restored(backup, seq, replayed, refusal, accepted)


def _put_back(config: Config, backup: Path) -> None:
    url = config.database_url
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
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(backup) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()
