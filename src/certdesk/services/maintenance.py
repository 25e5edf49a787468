"""Housekeeping a running server does every few minutes (and `certdesk maintenance` on demand):
close issuances interrupted by a crash, withdraw renewals never installed, forget old nonces,
publish the CRLs that are due (`crl_publish.republish_due`; a faster job loop may run it too),
queue and deliver expiry reminders once a channel ([smtp] host, a webhook) is configured."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field

from certdesk.services.context import Context
from certdesk.services.crl_publish import republish_due
from certdesk.services.issuance import abandon_stale_reservations
from certdesk.services.nonces import Nonces
from certdesk.services.reminders import RemindReport, delivery_configured, remind
from certdesk.services.renewal_install import expire_pending

STALE_RESERVATION = dt.timedelta(minutes=10)
log = logging.getLogger("certdesk.maintenance")


@dataclass(frozen=True)
class MaintenanceReport:
    abandoned: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    nonces_forgotten: int = 0
    crls: list[str] = field(default_factory=list)  # "issuing/7 delta"
    reminders: RemindReport = field(default_factory=RemindReport)


def run_maintenance(ctx: Context, nonces: Nonces | None = None) -> MaintenanceReport:
    return MaintenanceReport(
        abandon_stale_reservations(ctx, STALE_RESERVATION),
        expire_pending(ctx),
        (nonces or Nonces(ctx)).prune(),
        [f"{c.issuer}/{c.number} {c.kind}" for c in republish_due(ctx)],
        remind(ctx) if delivery_configured(ctx) else RemindReport(),
    )


def start_maintenance_thread(ctx: Context, every: dt.timedelta) -> threading.Event:
    """Run `run_maintenance` every `every` until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        nonces = Nonces(ctx)
        while not stop.wait(every.total_seconds()):
            try:
                report = run_maintenance(ctx, nonces)
                if report.abandoned or report.withdrawn or report.crls:
                    log.info("maintenance: %s", report)
            except Exception:  # keep serving; the next round tries again
                log.exception("maintenance failed")

    threading.Thread(target=loop, name="certdesk-maintenance", daemon=True).start()
    return stop
