"""The journal's use cases: open it with a process (settling its last line against the database),
replay it into a restored database, and the operator's explicit acceptance of a loss.

A process that writes trusts the journal only if it agrees with the database: same records at
the journal's last committed sequence number, nothing in the database the journal lacks, nothing
in the journal the database lacks. Otherwise every write is refused (`Database.refusal`) with a
message saying what may be missing, until `certdesk restore` replays what is missing or the
operator accepts the loss (`certdesk restore --accept-loss`), which is itself audited.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from certdesk.config import Config
from certdesk.domain.clock import Clock
from certdesk.domain.errors import CertdeskError
from certdesk.store import audit
from certdesk.store import journal as journal_file
from certdesk.store.db import Database

if TYPE_CHECKING:
    from certdesk.services.context import Context

START = "journal.start"
LOSS_ACCEPTED = "journal.loss_accepted"
CHECKPOINTS = "checkpoints.log"  # kept with the journal (services/checkpoints.py)


def attach(config: Config, db: Database, clock: Clock, actor: str) -> None:
    """Journal every audited write of `db` from now on, or refuse them all if the journal
    cannot be trusted (the refusal says why and what may be missing)."""
    journal = _journal(config)
    db.journal, db.refusal = None, None
    # Other processes may be writing (another server of the installation): with the head held,
    # none of them is between its journal line and its commit, so an unsettled last line
    # is judged by a database that will not change under the judgement.
    with db.write() as conn:
        audit.lock_head(conn)
        problem = _settle(db, journal)
    if problem == "new":
        _start(db, journal, clock, actor, {})
    elif isinstance(problem, CertdeskError):
        db.refusal = problem
    else:
        db.journal = journal


def _journal(config: Config) -> journal_file.Journal:
    return journal_file.Journal(config.journal_dir, config.journal.segment_bytes)


def require_trusted(ctx: Context) -> None:
    """Refuse now (e.g. at `certdesk serve`) what would be refused at the first write."""
    if ctx.db.refusal is not None:
        raise ctx.db.refusal


def _head_at(db: Database) -> tuple[int, str, str]:
    with db.read() as conn:
        seq, digest = audit.head(conn)
        record = audit.record_at(conn, seq)
    return seq, digest, record.at.isoformat() if record else "-"


def _settle(db: Database, journal: journal_file.Journal) -> CertdeskError | str | None:
    """None: the journal and the database agree (its last line settled on the way); "new": no
    journal and none was ever written for this database; else the refusal.

    Only the last segment is read: it opens with a head its writer read as committed, and a
    database at or past that head is judged by it. A database older than the last segment (a
    copied-back file) is checked against the segments from the one holding its head on."""
    seq, _digest, at = _head_at(db)
    found = journal_file.scan(journal.directory)
    if found is not None and found.earlier and found.damage is None and seq < found.base_seq:
        found = journal_file.scan(journal.directory, since=seq)
    if found is None or (found.journal_id is None and found.damage is None):
        with db.read() as conn:
            started = audit.newest_of(conn, START)
        if started is None:
            return "new"
        return CertdeskError("journal.missing", path=str(journal.directory), seq=seq, at=at)
    path = str(found.path)
    if found.damage is not None:
        return CertdeskError(
            "journal.unreadable",
            path=path,
            line=found.damage_line,
            detail=found.damage,
            seq=found.last_seq,
            at=found.last_at or "-",
        )
    if seq < found.base_seq:
        return CertdeskError("journal.gap", path=path, db_seq=seq, base=found.base_seq)
    if seq < found.last_seq:
        return CertdeskError(
            "journal.ahead_of_database", path=path, db_seq=seq, journal_seq=found.last_seq
        )
    if not _holds(db, found.last_seq, found.last_hash):
        return CertdeskError("journal.mismatch", path=path, seq=found.last_seq)
    end = found.last_seq
    tail = found.tail
    if tail is not None:
        if found.tail_in_doubt:
            return CertdeskError(
                "journal.in_doubt", path=path, first=tail.first, last=tail.last, at=tail.at
            )
        if seq >= tail.last and _holds(db, tail.last, tail.hash):
            journal.write({"k": "ok", "last": tail.last})
            end = tail.last
        elif seq == found.last_seq:  # its commit never happened: the database is authoritative
            journal.write({"k": "void", "last": tail.last})
        else:
            return CertdeskError("journal.mismatch", path=path, seq=tail.last)
    if seq > end:
        return CertdeskError("journal.behind_database", path=path, journal_seq=end, db_seq=seq)
    return None


def _holds(db: Database, seq: int, digest: str) -> bool:
    """Does the database's log hold record `seq` with this hash (seq 0: the empty log)?"""
    if seq == 0:
        return digest == audit.GENESIS
    with db.read() as conn:
        record = audit.record_at(conn, seq)
    return record is not None and record.hash == digest


def _start(
    db: Database, journal: journal_file.Journal, clock: Clock, actor: str, why: dict[str, object]
) -> str:
    """A new journal continuing from the database's head; its first transaction records it."""
    seq, digest, _at = _head_at(db)
    journal_id = uuid.uuid4().hex
    journal.start({"k": "start", "journal": journal_id, "base": seq, "hash": digest})
    db.journal, db.refusal = journal, None
    now = clock.now()
    entries = (
        [audit.Entry(now, actor, LOSS_ACCEPTED, "journal", journal_id, after=why)] if why else []
    )
    entries.append(
        audit.Entry(
            now,
            actor,
            START,
            "journal",
            journal_id,
            after={"path": str(journal.directory), "base": seq},
        )
    )
    with db.write() as conn:
        audit.append_many(conn, entries)
    return journal_id


@dataclass(frozen=True)
class Replayed:
    """What `replay` put back: transactions, the sequence range, and how many of each action."""

    transactions: int = 0
    first: int = 0
    last: int = 0
    actions: dict[str, int] = field(default_factory=dict)


def replay(config: Config, db: Database, *, from_backup: bool) -> Replayed:
    """Apply the journal's committed transactions after the database's head, each in one
    transaction, checking after each that the audit head is exactly the journal's.

    Only a journal that continues this database exactly (its hash at the database's head) is
    replayed; anything else is left for `attach` to refuse with its reason. The unsettled last
    line is never replayed: after a restore from a backup nobody can tell whether it committed,
    so it is marked in doubt and the operator must decide.
    """
    seq, digest, _at = _head_at(db)
    found = journal_file.scan(config.journal_dir, since=seq, keep_after=seq)
    if found is None or found.damage is not None or seq < found.base_seq:
        return Replayed()
    lines = found.committed
    if seq == found.base_seq and found.base_hash != digest:
        return Replayed()
    if lines and (lines[0].first != seq + 1 or lines[0].prev != digest):
        return Replayed()
    counts: Counter[str] = Counter()
    for line in lines:
        with db.write() as conn:
            journal_file.apply(conn, line)
            if audit.head(conn) != (line.last, line.hash):
                raise CertdeskError("journal.replay_failed", seq=line.last)
        counts.update(line.actions)
    if found.tail is not None and from_backup and not found.tail_in_doubt:
        _journal(config).write({"k": "doubt", "last": found.tail.last})
    if not lines:
        return Replayed()
    return Replayed(len(lines), lines[0].first, lines[-1].last, dict(counts))


@dataclass(frozen=True)
class Status:
    """The journal at a glance: its segments (name, bytes), the last record it holds (from the
    last segment only) and the database's head; `refusal` while they do not agree."""

    directory: str
    segments: list[tuple[str, int]]
    journal_last: int | None
    database_head: int
    refusal: str | None


def status(ctx: Context) -> Status:
    found = journal_file.scan(ctx.config.journal_dir)
    seq, _digest, _at = _head_at(ctx.db)
    return Status(
        str(ctx.config.journal_dir),
        [(p.name, p.stat().st_size) for p in journal_file.segments(ctx.config.journal_dir)],
        found.end() if found is not None and found.damage is None else None,
        seq,
        ctx.db.refusal.code if ctx.db.refusal is not None else None,
    )


def accept_loss(config: Config, db: Database, clock: Clock, actor: str) -> str | None:
    """The operator's decision: keep the database as it is, set the old journal and the
    checkpoints aside (renamed, not deleted) and start a new journal; audited with what may be
    missing. Returns the new journal's id (None: there was nothing to accept)."""
    if db.refusal is None:
        return None
    refusal = db.refusal
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    for old in [*journal_file.segments(config.journal_dir), config.journal_dir / CHECKPOINTS]:
        if old.exists():
            old.rename(old.with_name(f"{old.name}.set-aside-{stamp}"))
    journal = _journal(config)
    return _start(
        db,
        journal,
        clock,
        actor,
        {"refusal": refusal.code, "detail": refusal.message("en"), **_jsonable(refusal.params)},
    )


def _jsonable(params: dict[str, object]) -> dict[str, object]:
    return json.loads(json.dumps(params, default=str))  # type: ignore[no-any-return]
