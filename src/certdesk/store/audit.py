"""Append-only audit log as a SHA-256 hash chain.

Each record's hash covers its content and the previous record's hash, so an edited, deleted or
reordered record breaks the chain at a point `verify` can name. The head row (seq, hash) is
updated in the same transaction as the record: on PostgreSQL its row lock orders concurrent
writers; on SQLite the write transaction already holds the database lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from certdesk.store import journal
from certdesk.store.db import FixedRead, answered, execute_many, fetch_in, note_change
from certdesk.store.tables import audit_head, audit_log

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: str | None
    after: str | None
    prev_hash: str
    hash: str


# Built once: `json.dumps` with any option builds a new encoder on every call, and every record
# is encoded three times (before, after, the hashed body).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
).encode
_HASHED_BODY = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def to_json(value: Any) -> str | None:
    """Canonical JSON of a before/after snapshot (sorted keys, dates as ISO 8601)."""
    if value is None:
        return None
    return _CANONICAL(value)


def record_hash(
    seq: int,
    at: dt.datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: str | None,
    after: str | None,
    prev_hash: str,
) -> str:
    at_utc = at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    body = _HASHED_BODY(
        [seq, at_utc, actor, action, object_type, object_id, before, after, prev_hash]
    )
    return hashlib.sha256(body.encode()).hexdigest()


_HEAD = FixedRead(
    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
)
_INSERT = insert(audit_log)
_MOVE_HEAD = update(audit_head).where(audit_head.c.id == 1)


@dataclass(frozen=True)
class Entry:
    """One state change to record; `before`/`after` are JSON-able snapshots."""

    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: Any = None
    after: Any = None


def append_many(conn: Connection, entries: list[Entry]) -> int:
    """Append records inside the caller's transaction, chained in order; returns the last seq.

    One head read and one head update per call, so a batch of state changes costs one round of
    locking rather than one per record.
    """
    (head,) = fetch_in(conn, _HEAD, {})
    seq, prev = int(head.seq), str(head.hash)
    start, first_prev = seq, prev
    rows = []
    for e in entries:
        seq += 1
        before_s, after_s = to_json(e.before), to_json(e.after)
        digest = record_hash(
            seq, e.at, e.actor, e.action, e.object_type, e.object_id, before_s, after_s, prev
        )
        rows.append(
            {
                "seq": seq,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "object_type": e.object_type,
                "object_id": e.object_id,
                "before": before_s,
                "after": after_s,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    if rows:
        execute_many(conn, _INSERT, rows)
        execute_many(conn, _MOVE_HEAD, [{"seq": seq, "hash": prev}])
        journal.note_audit(
            conn, start + 1, first_prev, seq, prev, entries[-1].at, [e.action for e in entries]
        )
        saved = answered(conn)
        if any(
            e.object_type in WATCHED and e.action not in QUIET and e.object_id not in saved
            for e in entries
        ):
            note_change(conn)
    return seq


def lock_head(conn: Connection) -> None:
    """Hold the chain's head until the caller's transaction ends: no other writer is between
    appending and committing meanwhile (a journal's last line is then settled for good)."""
    fetch_in(conn, _HEAD, {})


_HEAD_UNLOCKED = select(audit_head.c.seq, audit_head.c.hash)  # reads; writers lock `_HEAD`


def head(conn: Connection) -> tuple[int, str]:
    """(seq, hash) of the newest record (0 and the genesis hash for an empty log)."""
    row = conn.execute(_HEAD_UNLOCKED).one()
    return int(row.seq), str(row.hash)


def record_at(conn: Connection, seq: int) -> AuditRecord | None:
    row = conn.execute(select(audit_log).where(audit_log.c.seq == seq)).first()
    return AuditRecord(**row._asdict()) if row is not None else None


def newest_of(conn: Connection, action: str) -> AuditRecord | None:
    """The newest record of `action` (e.g. the journal this database was last written with)."""
    row = conn.execute(
        select(audit_log)
        .where(audit_log.c.action == action)
        .order_by(audit_log.c.seq.desc())
        .limit(1)
    ).first()
    return AuditRecord(**row._asdict()) if row is not None else None


# Objects whose changes a running server reacts to at once (OCSP re-signing): the commit of a
# transaction that recorded one wakes `Database.after_commit` listeners.
WATCHED = ("certificate", "authority")
# ... except what changes no answer: a reservation has no certificate yet, and a renewal
# installed (pending → active) is "good" before and after. Nor does a change to a certificate
# whose new answer the same transaction saved (`note_answered`: a new certificate's first
# response, a superseded one's "revoked"). The change feed still lists them all (its next poll).
QUIET = ("certificate.reserve", "certificate.activate")


# built once: every process reads the feed at each wake and every `ocsp.poll_seconds`
_CHANGES = select(audit_log.c.object_type, audit_log.c.object_id).where(
    audit_log.c.seq > bindparam("after"),
    audit_log.c.seq <= bindparam("upto"),
    or_(*(audit_log.c.object_type == kind for kind in WATCHED)),
)


def changes_since(conn: Connection, seq: int) -> tuple[int, list[tuple[str, str]]]:
    """The chain's head and the (object type, id) of watched records after `seq`: the change
    feed of every process writing this database (every state change is recorded)."""
    top = head(conn)[0]
    if top <= seq:
        return top, []
    rows = conn.execute(_CHANGES, {"after": seq, "upto": top})
    return top, [(str(t), str(i)) for t, i in rows]


def append(
    conn: Connection,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append one record inside the caller's transaction; returns its sequence number."""
    return append_many(conn, [Entry(at, actor, action, object_type, object_id, before, after)])


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    kind: str  # "edited" | "missing" | "reordered" | "truncated"
    detail: str


def iter_records(conn: Connection, batch: int = 5000) -> Iterator[AuditRecord]:
    last = 0
    while True:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield AuditRecord(**row._asdict())
        last = rows[-1].seq


# The last sequence number PostgreSQL's INTEGER holds: every record is older than a later one.
_MAX_SEQ = 2**31 - 1


def newest_first(
    conn: Connection,
    before: int | None,
    limit: int,
    action: str | None = None,
    actor: str | None = None,
) -> list[AuditRecord]:
    """At most `limit` records older than sequence number `before` (None: the newest), newest
    first, optionally of one action and/or actor."""
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if before is not None and before <= _MAX_SEQ:
        query = query.where(audit_log.c.seq < before)
    if action:
        query = query.where(audit_log.c.action == action)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    return [AuditRecord(**row._asdict()) for row in conn.execute(query)]


def actions(conn: Connection) -> list[str]:
    """Every action name in the log, sorted (the audit page's filter offers them)."""
    return sorted(conn.execute(select(audit_log.c.action).distinct()).scalars())


def verify(conn: Connection) -> tuple[int, list[ChainProblem]]:
    """Walk the whole chain; returns (records checked, problems found, first first)."""
    problems: list[ChainProblem] = []
    expected_prev, expected_seq, count = GENESIS, 1, 0
    for rec in iter_records(conn):
        count += 1
        recomputed = record_hash(
            rec.seq,
            rec.at,
            rec.actor,
            rec.action,
            rec.object_type,
            rec.object_id,
            rec.before,
            rec.after,
            rec.prev_hash,
        )
        if recomputed != rec.hash:
            problems.append(ChainProblem(rec.seq, "edited", "content does not match its hash"))
        if rec.seq != expected_seq:
            if rec.seq > expected_seq:
                gap = (
                    f"{expected_seq}"
                    if rec.seq == expected_seq + 1
                    else (f"{expected_seq}–{rec.seq - 1}")
                )
                problems.append(
                    ChainProblem(
                        expected_seq, "missing", f"record(s) {gap} deleted before {rec.seq}"
                    )
                )
            else:
                problems.append(
                    ChainProblem(rec.seq, "reordered", f"expected {expected_seq}, found {rec.seq}")
                )
        elif rec.prev_hash != expected_prev:
            problems.append(
                ChainProblem(rec.seq, "reordered", "does not follow the record before it")
            )
        expected_prev, expected_seq = rec.hash, rec.seq + 1
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if head.seq != expected_seq - 1 or (head.seq and head.hash != expected_prev):
        problems.append(
            ChainProblem(
                expected_seq,
                "truncated",
                f"the head says {head.seq} records, the log ends at {expected_seq - 1}",
            )
        )
    return count, problems
