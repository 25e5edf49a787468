"""Housekeeping a running server does every few minutes (and `certdesk maintenance` on demand):
close issuances interrupted by a crash, withdraw renewals never installed, forget old nonces,
retire an issuing CA whose last certificate has expired, publish the CRLs that are due
(`crl_publish.republish_due`; a faster job loop may run it too), queue and deliver expiry
reminders once a channel ([smtp] host, a webhook) is configured, sign a checkpoint of the audit
head."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from certdesk.services.checkpoints import write_checkpoint
from certdesk.services.context import Context
from certdesk.services.crl_publish import republish_due
from certdesk.services.issuance import abandon_stale_reservations
from certdesk.services.jobs import JobRunner
from certdesk.services.nonces import Nonces
from certdesk.services.ocsp import OcspResponder, add_ocsp_jobs
from certdesk.services.reminders import RemindReport, delivery_configured, remind
from certdesk.services.renewal_install import expire_pending
from certdesk.services.rollover import retire_finished

STALE_RESERVATION = dt.timedelta(minutes=10)
CRL_CHECK_SECONDS = 30.0  # a revocation is on a published CRL within a minute
log = logging.getLogger("certdesk.maintenance")


@dataclass(frozen=True)
class MaintenanceReport:
    abandoned: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    nonces_forgotten: int = 0
    retired: list[str] = field(default_factory=list)
    crls: list[str] = field(default_factory=list)  # "issuing/7 delta"
    checkpoint: int | None = None  # the audit sequence number signed, if the head moved
    reminders: RemindReport = field(default_factory=RemindReport)


def run_maintenance(ctx: Context, nonces: Nonces | None = None) -> MaintenanceReport:
    abandoned = abandon_stale_reservations(ctx, STALE_RESERVATION)
    withdrawn = expire_pending(ctx)  # withdrawn renewals go on the CRLs published below
    forgotten = (nonces or Nonces(ctx)).prune()
    retired = retire_finished(ctx)  # a retired CA's last CRL is its own; it is not republished
    crls = [f"{c.issuer}/{c.number} {c.kind}" for c in republish_due(ctx)]
    reminders = remind(ctx) if delivery_configured(ctx) else RemindReport()
    point = write_checkpoint(ctx)  # last: it signs the head the steps above left
    seq = point.seq if point else None
    return MaintenanceReport(abandoned, withdrawn, forgotten, retired, crls, seq, reminders)


def add_maintenance_job(runner: JobRunner, ctx: Context) -> None:
    """Run `run_maintenance` every `renewal.maintenance_minutes` on the server's job runner
    (the first round one interval after start: `serve` runs one before it listens)."""
    nonces = Nonces(ctx)
    every = ctx.config.renewal.maintenance_minutes * 60.0

    def job() -> None:
        report = run_maintenance(ctx, nonces)
        if report.abandoned or report.withdrawn or report.retired or report.crls:
            log.info("maintenance: %s", report)

    runner.add("maintenance", every, job, first_in=every, once=True)


def add_background_jobs(runner: JobRunner, ctx: Context, ocsp: OcspResponder) -> None:
    """What `serve` and `worker` run besides answering: maintenance, CRLs, the OCSP change feed
    and pre-signing; a commit that changed an answer (a revocation) wakes the feed at once."""
    add_maintenance_job(runner, ctx)
    add_crl_job(runner, ctx)
    add_ocsp_jobs(runner, ocsp)
    ctx.db.after_commit(runner.wake)


def add_crl_job(runner: JobRunner, ctx: Context) -> None:
    """Publish the CRLs that are due every `CRL_CHECK_SECONDS` (a round with nothing due is a few
    indexed queries per CA); not on every wake: a burst of revocations makes one CRL, not many."""
    runner.add("crl.republish", CRL_CHECK_SECONDS, lambda: republish_due(ctx), once=True)
