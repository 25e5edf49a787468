"""Checking the audit chain."""

from __future__ import annotations

from dataclasses import dataclass

from certdesk.services.context import Context
from certdesk.store.audit import ChainProblem, verify


@dataclass(frozen=True)
class AuditReport:
    records: int
    problems: list[ChainProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(ctx: Context) -> AuditReport:
    with ctx.db.read() as conn:
        count, problems = verify(conn)
    return AuditReport(count, problems)
