"""The journal: every committed change, in a file the database backup does not hold.

Each write transaction that appends audit records also writes one line here — the SQL it ran,
with its parameters, and the audit sequence range and hashes it produced — and fsyncs it
*before* the database commits (`store/db.py` `Database.write`). After the commit a short `ok`
marker follows. Appends hold the audit head (PostgreSQL's row lock, SQLite's write lock), so
lines are in commit order, and which lines committed is provable from the file alone:

- a `tx` line that the next `tx` line continues (`first` = its `last` + 1, `prev` = its `hash`)
  committed: the next writer read the head it left;
- a `tx` line that the next one starts over (same `first` and `prev`) never committed;
- the last `tx` line is settled by its `ok` marker, or at the next start against the database
  (`services/journal.py`: `ok` when the database holds its records, `void` when not).

A line is `<sha256 of the JSON> <JSON>`; a torn last line (a crash while writing, before the
fsync, so before any commit) is ignored. Anything else unreadable is damage that stops replay.

The journal is a series of segments, `journal-<first record>.log` (a journal written before
segments is one `journal.log`, the first segment). When the active (last) segment reaches
`journal.segment_bytes`, the next `tx` line goes into a new segment, which opens with the audit
head it continues from (`segment` line: what the writer, holding the head, read as committed).
So a start-up reads the last segment only, a restore reads from the segment holding the backup's
head on, and certdesk never deletes a segment (the operator archives old ones).
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

LEGACY = "journal.log"  # the one file of a journal written before segments
DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024
_SEGMENT = re.compile(r"journal-(\d{12})\.log")
log = logging.getLogger("certdesk.journal")
_TX = "certdesk_journal_tx"
_WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
# Pre-signed OCSP responses are derived: after a restore they are signed again from the
# certificates. Saved with a new certificate's record (services/issuance.py), they stay out of
# the journal as they were before (a line per certificate ~1 KB shorter, and less to encode).
_DERIVED = re.compile(r"\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+ocsp_responses\b", re.IGNORECASE)


@dataclass
class Capture:
    """What one write transaction did: its SQL and the audit records it appended."""

    statements: list[list[Any]] = field(default_factory=list)
    first: int = 0
    prev: str = ""
    last: int = 0
    hash: str = ""
    at: str = ""
    actions: list[str] = field(default_factory=list)

    def line(self) -> dict[str, Any]:
        return {
            "k": "tx",
            "first": self.first,
            "last": self.last,
            "prev": self.prev,
            "hash": self.hash,
            "at": self.at,
            "actions": sorted(set(self.actions)),
            "sql": self.statements,
        }


def begin_capture(conn: Connection) -> Capture:
    capture = Capture()
    conn.info[_TX] = capture
    return capture


def end_capture(conn: Connection) -> None:
    conn.info.pop(_TX, None)


def capture_statement(conn: Connection, statement: str, parameters: Any, many: bool) -> None:
    """Keep a write statement of a journalled transaction (called for every cursor execute)."""
    capture: Capture | None = conn.info.get(_TX)
    if capture is not None and _WRITES.match(statement) and not _DERIVED.match(statement):
        capture.statements.append([statement, _encode(parameters), many])


def note_audit(
    conn: Connection,
    first: int,
    prev: str,
    last: int,
    digest: str,
    at: dt.datetime,
    actions: list[str],
) -> None:
    """Called by `store/audit.py` for every append: the range of records this line covers."""
    capture: Capture | None = conn.info.get(_TX)
    if capture is None:
        return
    if not capture.first:
        capture.first, capture.prev = first, prev
    capture.last, capture.hash = last, digest
    capture.at = at.astimezone(dt.UTC).isoformat()
    capture.actions.extend(actions)


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _encode(value: Any) -> Any:
    """JSON for DB-API parameters, keeping the types the driver needs back."""
    if type(value) in _PLAIN:  # most parameters: nothing to keep
        return value
    if type(value).__name__ == "Binary" and isinstance(getattr(value, "obj", None), bytes):
        value = value.obj  # psycopg's DB-API wrapper of bytea values; plain bytes replay alike
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    # the plain test inlined for the members: an executemany's rows hold a few values each
    if isinstance(value, dict):
        return {"$m": {k: v if type(v) in _PLAIN else _encode(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return [v if type(v) in _PLAIN else _encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$b" in value:
            return base64.b64decode(value["$b"])
        if "$t" in value:
            return dt.datetime.fromisoformat(value["$t"])
        if "$d" in value:
            return dt.date.fromisoformat(value["$d"])
        return {k: decode(v) for k, v in value["$m"].items()}
    if isinstance(value, list):
        return tuple(decode(v) for v in value)
    return value


def _frame(entry: dict[str, Any]) -> bytes:
    body = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return f"{hashlib.sha256(body.encode()).hexdigest()} {body}\n".encode()


def segment_name(first: int) -> str:
    """Named by the first record it may hold, zero-padded: name order is journal order."""
    return f"journal-{first:012d}.log"


def segments(directory: Path) -> list[Path]:
    """The journal's segments in order (the last is the active one); set-aside files excluded."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    numbered = sorted(name for name in names if _SEGMENT.fullmatch(name))
    return [directory / name for name in ([LEGACY] if LEGACY in names else []) + numbered]


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Journal:
    """Appends to the active segment in `directory`: O_APPEND, one write per line under an
    exclusive `flock` (several processes may share the journal), fsync when the line must be
    durable. Whoever holds the flock of the active segment may start the next one."""

    def __init__(self, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._open: Path | None = None

    def start(self, entry: dict[str, Any]) -> Path:
        """A new journal's first segment, holding its `start` line."""
        return self._create(segment_name(int(entry["base"]) + 1), entry)

    def _create(self, name: str, header: dict[str, Any]) -> Path:
        """A segment appears whole or not at all: written and fsynced under a temporary name,
        renamed, and the directory fsynced, before any line goes into it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        if path.exists():
            raise FileExistsError(path)
        temporary = self.directory / f".{name}.new"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, _frame(header))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, path)
        _fsync_dir(self.directory)
        return path

    def _locked(self) -> int:
        """The active segment, flocked; another process may have started a newer one."""
        while True:
            if self._fd is None:
                found = segments(self.directory)
                if not found:
                    raise FileNotFoundError(f"no journal segment in {self.directory}")
                self._fd, self._open = os.open(found[-1], os.O_RDWR | os.O_APPEND), found[-1]
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            if segments(self.directory)[-1:] == [self._open]:
                return self._fd
            self._drop_fd()

    def _drop_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops its flock too
            self._fd, self._open = None, None

    def _rotate(self, entry: dict[str, Any]) -> int:
        """Start the next segment for this `tx` line. Its writer holds the audit head, so the
        head it continues from (`first` - 1, `prev`) is committed: the new segment opens with it
        and the old segment's last line is settled by it. Returns the new segment, flocked."""
        assert self._open is not None
        header = _header(self._open)
        self._create(
            segment_name(int(entry["first"])),
            {
                "k": "segment",
                "journal": header["journal"] if header else "",
                "base": int(entry["first"]) - 1,
                "hash": entry["prev"],
            },
        )
        self._drop_fd()
        return self._locked()

    def write(self, entry: dict[str, Any], *, sync: bool = True) -> None:
        data = _frame(entry)
        with self._lock:
            fd = self._locked()
            try:
                _drop_torn_tail(fd)
                if (
                    entry.get("k") == "tx"
                    and os.fstat(fd).st_size >= self.segment_bytes
                    and self._open is not None
                    and self._open.name != segment_name(int(entry["first"]))
                ):
                    fd = self._rotate(entry)
                os.write(fd, data)
                if sync:
                    os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def before_commit(self, capture: Capture) -> None:
        """The transaction's line, durable before the database commits it."""
        self.write(capture.line())

    def committed(self, capture: Capture) -> None:
        """The commit happened; not fsynced, and a failure to write it is only logged: the
        next line or the next start's check against the database settle the line without it
        (the caller's change is committed and must not be reported as failed)."""
        try:
            self.write({"k": "ok", "last": capture.last}, sync=False)
        except OSError:
            log.warning("journal: commit marker of record %s not written", capture.last)

    def close(self) -> None:
        with self._lock:
            self._drop_fd()


def _drop_torn_tail(fd: int) -> None:
    """A line cut by a crash (no newline at the end) was never fsynced, so never committed:
    cut it off before appending, or the next line would be glued to it."""
    end = os.fstat(fd).st_size
    if end == 0 or os.pread(fd, 1, end - 1) == b"\n":
        return
    start = end
    while start > 0:
        start = max(0, start - (1 << 16))
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            os.ftruncate(fd, start + cut + 1)
            return
    os.ftruncate(fd, 0)


@dataclass(frozen=True)
class TxLine:
    first: int
    last: int
    prev: str
    hash: str
    at: str
    actions: tuple[str, ...]
    sql: tuple[tuple[str, Any, bool], ...]


@dataclass
class Scan:
    """What the journal proves from the segments read: its start, the committed lines (those
    after `keep_after` kept whole), the unsettled last line, and the first damage, if any.
    `earlier`: segments before the first one read (a start-up reads only the last)."""

    journal_id: str | None = None
    base_seq: int = 0
    base_hash: str = ""
    last_seq: int = 0
    last_hash: str = ""
    last_at: str = ""
    committed: list[TxLine] = field(default_factory=list)
    tail: TxLine | None = None
    tail_in_doubt: bool = False
    damage: str | None = None
    damage_line: int = 0
    path: Path | None = None  # the segment read last, or the damaged one
    earlier: int = 0

    def end(self) -> int:
        """The last sequence number the journal holds, committed or pending."""
        return self.tail.last if self.tail is not None else self.last_seq

    def end_hash(self) -> str:
        return self.tail.hash if self.tail is not None else self.last_hash


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if raw.endswith(b"\n"):  # a line without its newline is a torn tail: ignored
                yield number, raw[:-1]


def _parse(raw: bytes) -> dict[str, Any] | None:
    digest, _, body = raw.partition(b" ")
    if hashlib.sha256(body).hexdigest().encode() != digest:
        return None
    try:
        entry: dict[str, Any] = json.loads(body)
    except ValueError:
        return None
    return entry


def _header(path: Path) -> dict[str, Any] | None:
    """A segment's first line (`start` or `segment`), read alone; None if it is not one."""
    try:
        with path.open("rb") as fh:
            raw = fh.readline(1 << 16)
    except OSError:
        return None
    entry = _parse(raw[:-1]) if raw.endswith(b"\n") else None
    return entry if entry is not None and entry.get("k") in ("start", "segment") else None


def _tx(entry: dict[str, Any], keep: bool) -> TxLine:
    sql = tuple((s, p, bool(m)) for s, p, m in entry["sql"]) if keep else ()
    return TxLine(
        int(entry["first"]),
        int(entry["last"]),
        str(entry["prev"]),
        str(entry["hash"]),
        str(entry["at"]),
        tuple(entry["actions"]),
        sql,
    )


def _holding(found: list[Path], seq: int) -> int:
    """The index of the segment holding the record after `seq`: the last one opening at or
    before it (headers only, newest first; an unreadable header is where reading must start)."""
    for index in range(len(found) - 1, -1, -1):
        header = _header(found[index])
        if header is None or int(header["base"]) <= seq:
            return index
    return 0


def scan(directory: Path, since: int | None = None, keep_after: int | None = None) -> Scan | None:
    """Read the journal (None: there is none): the last segment only, or with `since` every
    segment from the one holding the record after `since` on, checking that each continues
    the one before. Lines whose records end after `keep_after` are kept with their SQL, for
    replay; the others only move the position."""
    found = segments(directory)
    if not found:
        return None
    first = len(found) - 1 if since is None else _holding(found, since)
    result = Scan(earlier=first)
    for index, path in enumerate(found[first:]):
        result.path = path
        if not _scan_segment(path, result, keep_after, opening=index == 0):
            break
        if result.journal_id is None and len(found) > first + 1:
            result.damage, result.damage_line = "no segment header: cut short or replaced", 1
            break
    return result


def _scan_segment(path: Path, result: Scan, keep_after: int | None, *, opening: bool) -> bool:
    """Add one segment to `result`; False on damage (recorded in `result`)."""

    def settle(line: TxLine) -> None:
        result.last_seq, result.last_hash, result.last_at = line.last, line.hash, line.at
        if keep_after is not None and line.last > keep_after:
            result.committed.append(line)

    def damaged(what: str, number: int) -> bool:
        result.damage, result.damage_line = what, number
        return False

    number = 0
    try:
        for number, raw in _lines(path):
            entry = _parse(raw)
            if entry is None:
                return damaged("unreadable or altered line", number)
            kind = entry.get("k")
            if number == 1 and not opening:
                if kind != "segment" or str(entry["journal"]) != result.journal_id:
                    return damaged("not the next segment of this journal", number)
                base, digest = int(entry["base"]), str(entry["hash"])
                pending = result.tail
                if (base, digest) == (result.end(), result.end_hash()):
                    if pending is not None:
                        settle(pending)  # the writer that opened this segment read it committed
                elif pending is None or (base, digest) != (pending.first - 1, pending.prev):
                    return damaged("a segment before it is missing or cut short", number)
                result.tail, result.tail_in_doubt = None, False
                continue
            if kind in ("start", "segment"):
                result.journal_id = str(entry["journal"])
                result.base_seq = result.last_seq = int(entry["base"])
                result.base_hash = result.last_hash = str(entry["hash"])
                continue
            if kind == "tx":
                line = _tx(entry, keep_after is not None and int(entry["last"]) > keep_after)
                pending = result.tail
                if (
                    pending is not None
                    and line.first == pending.first
                    and line.prev == pending.prev
                ):
                    result.tail = line  # the pending line never committed: started over
                elif line.first == result.end() + 1 and line.prev == result.end_hash():
                    if pending is not None:
                        settle(pending)
                    result.tail = line
                else:
                    return damaged("does not follow the line before", number)
                result.tail_in_doubt = False
            elif kind in ("ok", "void", "doubt") and result.tail is not None:
                if int(entry["last"]) != result.tail.last:
                    continue  # a late marker of a line already settled by its successor
                if kind == "ok":
                    settle(result.tail)
                    result.tail = None
                elif kind == "void":
                    result.tail = None
                else:
                    result.tail_in_doubt = True
    except OSError as error:
        return damaged(f"cannot be read: {error.strerror}", number + 1)
    if number == 0 and not opening:
        return damaged("empty: the segment is cut short or replaced", 1)
    return True


def apply(conn: Connection, line: TxLine) -> None:
    """Run a committed line's SQL again, in the caller's transaction (replay after a restore:
    same statements, same parameters, same order, on the same kind of database)."""
    for statement, params, many in line.sql:
        if many:
            conn.exec_driver_sql(statement, [decode(p) for p in params])
        else:
            conn.exec_driver_sql(statement, decode(params))
