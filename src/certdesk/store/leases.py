"""The jobs lease: which one process of an installation runs the periodic jobs that must run once
(maintenance, CRL republishing, OCSP pre-signing, reminders).

Both kinds are held by something the operating system or PostgreSQL drops when the holder dies,
so a SIGKILLed or crashed holder never leaves a lease behind that must expire first:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a connection of its own.
  The connection closing, for any reason, releases it; the holder checks its connection before
  each round, so a holder cut off from the database stops running jobs. The key is derived from
  the schema, so installations sharing one database (one schema each) do not share a lease.
  `application_name` names the holder, which `holder()` reads from `pg_stat_activity`.
- SQLite (one machine): an exclusive `flock` on `<database>.jobs.lock`, the holder written in it.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from certdesk.store.db import sqlite_file

# First half of the advisory lock key: "cert" for the jobs, "migr" for migrations; the second
# half is the schema's CRC-32.
_CLASS = 0x63657274
_MIGRATIONS = 0x6D696772
_TRY = text("SELECT pg_try_advisory_lock(:a, CAST(:b AS integer))")
_UNLOCK = text("SELECT pg_advisory_unlock(:a, CAST(:b AS integer))")
_WAIT_IN_TRANSACTION = text("SELECT pg_advisory_xact_lock(:a, CAST(:b AS integer))")
_KEY_PART = text("SELECT current_schema()")
# A lock taken with two int4 keys shows up with objsubid 2 (classid, objid: the keys, as oid).
_HOLDER = text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
    "AND l.classid = CAST(:a AS oid) AND l.objid = CAST(:b AS oid)"
)


class Lease(Protocol):
    def take(self) -> bool:
        """True if this process holds the lease now (taken now or still held)."""

    def release(self) -> None: ...


def _schema_key(conn: Connection) -> int:
    schema = str(conn.execute(_KEY_PART).scalar_one())
    crc = zlib.crc32(schema.encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc  # int4 is signed


def serialise_migrations(conn: Connection) -> None:
    """PostgreSQL: wait until no other process of this schema is migrating, and keep others
    waiting until `conn`'s transaction ends (two servers started at once: the second finds the
    schema already at head). SQLite has one server process (`services/processes.py`)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_WAIT_IN_TRANSACTION, {"a": _MIGRATIONS, "b": _schema_key(conn)})


class AdvisoryLease:
    def __init__(self, url: str, holder: str) -> None:
        self._engine: Engine = create_engine(
            url, poolclass=NullPool, connect_args={"application_name": holder[:63]}
        )
        self._conn: Connection | None = None

    def take(self) -> bool:
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT 1"))  # still connected: still held
                return True
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                got = bool(conn.execute(_TRY, {"a": _CLASS, "b": _schema_key(conn)}).scalar())
            except Exception:
                conn.close()
                raise
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        except Exception:  # the database is unreachable: nobody here runs the jobs
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                # unlocked now, not when the server process behind the session has gone: the
                # next holder (and `holder()`) sees it free at once
                self._conn.execute(_UNLOCK, {"a": _CLASS, "b": _schema_key(self._conn)})
                self._conn.close()
            except Exception:
                self._conn.invalidate()
            self._conn = None


def advisory_holder(conn: Connection) -> str | None:
    """The `application_name` of the session holding this schema's jobs lease, if any."""
    key = _schema_key(conn)
    value = conn.execute(_HOLDER, {"a": _CLASS & 0xFFFFFFFF, "b": key & 0xFFFFFFFF}).scalar()
    return None if value is None else str(value)


class FileLease:
    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = None

    def take(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, self.holder.encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def lock_file_for(url: str) -> Path | None:
    """`<database file>.jobs.lock`, next to an SQLite database (None: in memory)."""
    database = sqlite_file(url)
    return None if database is None else database.with_name(f"{database.name}.jobs.lock")


def file_holder(path: Path) -> str | None:
    """Who holds the lock on `path` (None: nobody)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return path.read_text() or "?"
    finally:
        os.close(fd)
    return None
