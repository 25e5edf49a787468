"""Reading and checking the audit chain."""

from __future__ import annotations

from dataclasses import dataclass

from certdesk.services.checkpoints import Checkpoint, check
from certdesk.services.context import Context
from certdesk.store.audit import AuditRecord, ChainProblem, actions, newest_first, verify

MAX_PAGE = 500


@dataclass(frozen=True)
class AuditReport:
    records: int
    problems: list[ChainProblem]
    checkpoint: Checkpoint | None = None  # the newest signed checkpoint the log was checked with

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class AuditPage:
    """Records newest first; `next_before` continues the listing (None: nothing older)."""

    records: list[AuditRecord]
    next_before: int | None


def known_actions(ctx: Context) -> list[str]:
    with ctx.db.read() as conn:
        return actions(conn)


def verify_chain(ctx: Context) -> AuditReport:
    """The chain walked record by record, then held against every signed checkpoint (which
    sees a log cut at its end or copied back, where the chain alone looks intact)."""
    with ctx.db.read() as conn:
        count, problems = verify(conn)
    checkpoint, missing = check(ctx)
    return AuditReport(count, problems + missing, checkpoint)


def list_records(
    ctx: Context,
    before: int | None = None,
    limit: int = 50,
    action: str | None = None,
    actor: str | None = None,
) -> AuditPage:
    """A page of records older than sequence number `before`, optionally of one action/actor
    (a bare person id means `person:<id>`)."""
    limit = max(1, min(limit, MAX_PAGE))
    if actor and ":" not in actor:
        actor = f"person:{actor}"
    with ctx.db.read() as conn:
        found = newest_first(conn, before, limit + 1, action, actor)  # one more: is there more?
    records = found[:limit]
    more = len(found) > limit
    return AuditPage(records, records[-1].seq if more and records else None)
