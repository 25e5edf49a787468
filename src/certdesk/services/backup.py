"""Backup and restore of the database; the journal (services/journal.py) fills in what happened
after the backup, so a restore forgets no certificate and no revocation.

The copy itself is `store/snapshots.py` (SQLite's online backup API; PostgreSQL's pg_dump, with
base backups and WAL archiving as the alternative documented in docs/deployment.md).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from certdesk.config import Config
from certdesk.domain.clock import Clock, SystemClock
from certdesk.domain.errors import CertdeskError
from certdesk.services import journal
from certdesk.services.context import Context
from certdesk.store import audit, snapshots
from certdesk.store.db import Database, sqlite_file

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


@dataclass
class ServerLock:
    fds: list[int]

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)  # closing the descriptor drops its flock


def hold_server_lock(config: Config) -> ServerLock:
    """Held by `certdesk serve` for its life, so `restore` can tell a server is running. With
    SQLite also a lock next to the database file: a second server on the same database from
    another data directory is refused too (one server process per SQLite database,
    `services/processes.py`)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    held = [_lock(config.data_dir / LOCK_FILE, config.data_dir)]
    database = sqlite_file(config.database_url)
    if database is not None:
        try:
            held.append(_lock(database.with_name(f"{database.name}.{LOCK_FILE}"), database))
        except CertdeskError:
            os.close(held[0])
            raise
    return ServerLock(held)


def _lock(path: Path, what: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CertdeskError("server.already_running", path=str(what)) from None
    return fd


def _backup_name(dest: Path, now: dt.datetime, suffix: str) -> Path:
    if dest.is_dir() or str(dest).endswith(os.sep):
        dest.mkdir(parents=True, exist_ok=True)
        return dest / f"certdesk-{now.strftime('%Y%m%dT%H%M%SZ')}{suffix}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def take_backup(ctx: Context, dest: Path) -> Backup:
    """A consistent snapshot of the live database at `dest` (a directory: a new file in it)."""
    target = _backup_name(dest, ctx.clock.now(), ".db" if ctx.db.is_sqlite else ".pgdump")
    if target.exists():
        raise CertdeskError("backup.exists", path=str(target))
    with ctx.db.read() as conn:  # PostgreSQL: the dump holds at least this record
        seq, _ = audit.head(conn)
    kind = snapshots.take(ctx.db, target)
    if kind == "sqlite":  # exactly the record the copy ends with
        copied = Database(f"sqlite:///{target}")
        try:
            with copied.read() as conn:
                seq, _ = audit.head(conn)
        finally:
            copied.dispose()
    return Backup(target, seq, kind)


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
            snapshots.put_back(config.database_url, backup)
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
        lock.release()
    return Restored(backup, seq, replayed, refusal, accepted)
