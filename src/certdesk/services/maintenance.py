"""Housekeeping a running server does every few minutes (and `certdesk maintenance` on demand):
close issuances interrupted by a crash, withdraw renewals never installed, forget old nonces."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from certdesk.services.context import Context
from certdesk.services.issuance import abandon_stale_reservations
from certdesk.services.jobs import JobRunner
from certdesk.services.nonces import Nonces
from certdesk.services.renewal_install import expire_pending

STALE_RESERVATION = dt.timedelta(minutes=10)
log = logging.getLogger("certdesk.maintenance")


@dataclass(frozen=True)
class MaintenanceReport:
    abandoned: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    nonces_forgotten: int = 0


def run_maintenance(ctx: Context, nonces: Nonces | None = None) -> MaintenanceReport:
    return MaintenanceReport(
        abandon_stale_reservations(ctx, STALE_RESERVATION),
        expire_pending(ctx),
        (nonces or Nonces(ctx)).prune(),
    )


def add_maintenance_job(runner: JobRunner, ctx: Context) -> None:
    """Run `run_maintenance` every `renewal.maintenance_minutes` on the server's job runner
    (the first round one interval after start: `serve` runs one before it listens)."""
    nonces = Nonces(ctx)
    every = ctx.config.renewal.maintenance_minutes * 60.0

    def job() -> None:
        report = run_maintenance(ctx, nonces)
        if report.abandoned or report.withdrawn:
            log.info("maintenance: %s", report)

    runner.add("maintenance", every, job, first_in=every)
