"""Reading and checking the audit chain."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from certdesk.services.context import Context
from certdesk.store.audit import AuditRecord, ChainProblem, verify
from certdesk.store.tables import audit_log

MAX_PAGE = 500
MAX_SEQ = 2**31 - 1


@dataclass(frozen=True)
class AuditReport:
    records: int
    problems: list[ChainProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class AuditPage:
    """Records newest first; `next_before` continues the listing (None: nothing older)."""

    records: list[AuditRecord]
    next_before: int | None


def verify_chain(ctx: Context) -> AuditReport:
    with ctx.db.read() as conn:
        count, problems = verify(conn)
    return AuditReport(count, problems)


def list_records(
    ctx: Context,
    before: int | None = None,
    limit: int = 50,
    action: str | None = None,
    actor: str | None = None,
) -> AuditPage:
    """A page of records older than sequence number `before`, optionally of one action/actor."""
    limit = max(1, min(limit, MAX_PAGE))
    if before is not None and before > MAX_SEQ:
        before = None  # every record is older than that (and PostgreSQL's INTEGER ends there)
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(audit_log.c.seq < before)
    if action:
        query = query.where(audit_log.c.action == action)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    with ctx.db.read() as conn:
        rows = conn.execute(query).all()
    records = [AuditRecord(**row._asdict()) for row in rows[:limit]]
    more = len(rows) > limit
    return AuditPage(records, records[-1].seq if more and records else None)
