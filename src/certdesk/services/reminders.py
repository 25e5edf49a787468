"""Expiry reminders (issue 11): decide what is due, queue it in the outbox in the same
transaction, deliver it by e-mail and webhook.

Delivery is at-least-once. A row is marked `sending` with a lease (committed) before the SMTP
or HTTP exchange and `sent` after it; a job killed in between leaves the row `sending`, and
once the lease ends the next job sends it again with the same Message-ID / X-Certdesk-Delivery.
We chose a possible duplicate (recognisable, harmless) over a possible loss: a lost reminder is
an expired certificate on someone's desk, which is what this feature exists to prevent.
Failures are retried with backoff (`domain/reminders.py` RetryPolicy) and end as `failed`,
listed by `delivery_log` for officers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.reminders import (
    DueReminder,
    ReminderCandidate,
    RetryPolicy,
    days_left,
    due_reminders,
    parse_thresholds,
)
from certdesk.domain.states import CertState, PersonState
from certdesk.services import reminder_mail, webhooks
from certdesk.services.context import Context
from certdesk.services.expiry import ExpiryEntry, expiry_dashboard
from certdesk.services.policy import renewal_policy
from certdesk.store import certificates as certificates_store
from certdesk.store import outbox as outbox_store
from certdesk.store import registry as registry_store
from certdesk.store.db import AnyRow

EMAIL = "email"
BATCH = 200
log = logging.getLogger("certdesk.remind")


@dataclass(frozen=True)
class Planned:
    """One message the job would queue now."""

    topic: str
    channel: str
    recipient: str
    locale: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class RemindReport:
    queued: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0


def thresholds(ctx: Context) -> tuple[int, ...]:
    try:
        return parse_thresholds(ctx.config.remind.thresholds)
    except ValueError as exc:
        raise CertdeskError("config.invalid", detail=f"remind.thresholds: {exc}") from exc


def _day(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).date().isoformat()


def _reminder_messages(ctx: Context, row: AnyRow, due: DueReminder) -> list[Planned]:
    opens = renewal_policy(ctx.config).decide(CertState.ACTIVE, row.not_after, ctx.clock.now())
    payload = {
        "event": "certificate.expiring",
        "person_id": row.person_id,
        "name": row.name,
        "unit_code": row.unit_code,
        "unit_name": row.unit_name,
        "serial": row.serial,
        "not_after": row.not_after.isoformat(),
        "not_after_day": _day(row.not_after),
        "threshold": due.threshold,
        "days_left": due.days_left,
        "window_open": opens.allowed,
        "opens_day": _day(opens.opens_at),
    }
    out = [Planned(due.topic, EMAIL, row.email, row.locale, payload)]
    out += [
        Planned(due.topic, f"webhook:{name}", name, row.locale, payload)
        for name in ctx.config.remind.endpoints()
    ]
    return out


def _entry(e: ExpiryEntry) -> dict[str, Any]:
    assert e.not_after is not None  # expired and in-window entries have a certificate
    return {
        "person_id": e.person_id,
        "name": e.name,
        "serial": e.serial,
        "not_after_day": _day(e.not_after),
        "days_left": e.days_left,
    }


def _digests(ctx: Context, conn: Connection) -> list[Planned]:
    """Today's digest for each unit with people to renew or expired (renewed ones left out)."""
    if not ctx.config.remind.digest:
        return []
    today = _day(ctx.clock.now())
    out = []
    for unit in registry_store.all_units(conn):
        if not unit.contact_email:
            continue
        board = expiry_dashboard(ctx, unit.code)
        listed = [e.serial for e in board.in_window + board.expired if e.serial]
        renewed = certificates_store.renewed(conn, listed)
        in_window = [_entry(e) for e in board.in_window if e.serial not in renewed]
        expired = [_entry(e) for e in board.expired if e.serial not in renewed]
        if not (in_window or expired):
            continue
        payload = {
            "kind": "digest",
            "unit_code": unit.code,
            "unit_name": unit.name,
            "contact_name": unit.contact_name,
            "day": today,
            "in_window": in_window,
            "expired": expired,
        }
        out.append(
            Planned(
                f"digest:{unit.code}:{today}",
                EMAIL,
                unit.contact_email,
                ctx.config.remind.locale,
                payload,
            )
        )
    return out


def _plan(ctx: Context, conn: Connection) -> list[Planned]:
    """Everything due now and not queued yet, read in `conn`'s transaction."""
    now = ctx.clock.now()
    days = thresholds(ctx)
    start_of_today = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
    rows = outbox_store.reminder_candidates(
        conn, start_of_today, start_of_today + dt.timedelta(days=max(days) + 1)
    )
    by_serial = {r.serial: r for r in rows}
    candidates = [
        ReminderCandidate(
            r.serial, r.not_after, CertState(r.state), PersonState(r.holder_state), bool(r.renewed)
        )
        for r in rows
    ]
    planned: list[Planned] = []
    for due in due_reminders(candidates, days, now):
        planned += _reminder_messages(ctx, by_serial[due.serial], due)
    planned += _digests(ctx, conn)
    fresh: list[Planned] = []
    for channel in {p.channel for p in planned}:
        mine = [p for p in planned if p.channel == channel]
        seen = outbox_store.queued_topics(conn, channel, [p.topic for p in mine])
        fresh += [p for p in mine if p.topic not in seen]
    return sorted(fresh, key=lambda p: (p.topic, p.channel))


def plan(ctx: Context) -> list[Planned]:
    """What `queue_due` would queue now (`certdesk remind --dry-run`); writes nothing."""
    with ctx.db.read() as conn:
        return _plan(ctx, conn)


def _row(p: Planned) -> dict[str, str]:
    payload = json.dumps(p.payload, ensure_ascii=False, sort_keys=True)
    return {
        "topic": p.topic,
        "channel": p.channel,
        "recipient": p.recipient,
        "locale": p.locale,
        "payload": payload,
    }


def queue_due(ctx: Context) -> int:
    """Decide and queue the due reminders and digests in one transaction (one audit record)."""
    with ctx.db.write() as conn:
        planned = _plan(ctx, conn)
        if not planned:
            return 0
        now = ctx.clock.now()
        added = outbox_store.queue(conn, [_row(p) for p in planned], now)
        if added:
            ctx.record(conn, now, "remind.queue", "outbox", _day(now), after={"queued": added})
    return added


def remind_now(ctx: Context, unit_code: str) -> int:
    """ "Remind now" from the campaign: a reminder to each of the unit's people whose renewal
    window is open and who have not renewed, through the same outbox (at most one a day per
    certificate), with one audit record naming who asked."""
    now = ctx.clock.now()
    today = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
    policy = renewal_policy(ctx.config)
    with ctx.db.write() as conn:
        unit = registry_store.get_unit(conn, unit_code)
        if unit is None:
            raise CertdeskError("unit.not_found", code=unit_code)
        rows = outbox_store.reminder_candidates(
            conn, now, today + policy.window + dt.timedelta(days=1)
        )
        planned: list[Planned] = []
        for row in rows:
            open_now = policy.decide(CertState(row.state), row.not_after, now).allowed
            if row.unit_code != unit_code or row.renewed or not open_now:
                continue
            left = days_left(row.not_after, now)
            for p in _reminder_messages(ctx, row, DueReminder(row.serial, left, left)):
                planned.append(dataclasses.replace(p, topic=f"manual:{row.serial}:{_day(now)}"))
        added = outbox_store.queue(conn, [_row(p) for p in planned], now)
        ctx.record(conn, now, "remind.now", "unit", unit_code, after={"queued": added})
    return added


def _channels(ctx: Context) -> list[str]:
    """The channels that can deliver now: e-mail once [smtp] host is set, each webhook."""
    names = [f"webhook:{n}" for n in ctx.config.remind.endpoints()]
    return ([EMAIL] if ctx.config.smtp.host else []) + names


def delivery_configured(ctx: Context) -> bool:
    """Whether anything can be delivered; without a channel, housekeeping queues nothing."""
    return bool(_channels(ctx))


def _send(ctx: Context, mailer: reminder_mail.Mailer, row: AnyRow) -> None:
    if row.channel == EMAIL:
        payload = json.loads(row.payload)
        kind = "digest" if payload.get("kind") == "digest" else "reminder"
        mailer.send(
            reminder_mail.build(
                ctx.config, row.id, row.topic, kind, row.locale, row.recipient, payload
            )
        )
    else:
        webhooks.post(
            ctx.config, row.channel.removeprefix("webhook:"), row.id, row.payload.encode()
        )


def deliver_due(ctx: Context, limit: int = 10_000) -> RemindReport:
    """Send what is due in the outbox; each row: lease (commit), send, mark (commit)."""
    cfg = ctx.config.remind
    retry = RetryPolicy(cfg.max_attempts, dt.timedelta(seconds=cfg.retry_base_seconds))
    sent = retried = failed = 0
    channels = _channels(ctx)
    with reminder_mail.Mailer(ctx.config) as mailer:
        while channels and sent + retried + failed < limit:
            now = ctx.clock.now()
            with ctx.db.write() as conn:
                rows = outbox_store.claim(
                    conn, channels, now, now + dt.timedelta(seconds=cfg.lease_seconds), BATCH
                )
            if not rows:
                break
            for row in rows:
                try:
                    _send(ctx, mailer, row)
                except Exception as exc:  # SMTP, HTTP, a missing secret: retried, then failed
                    again = retry.after_failure(row.attempts + 1, ctx.clock.now())
                    with ctx.db.write() as conn:
                        outbox_store.mark_failed_attempt(
                            conn, row.id, f"{type(exc).__name__}: {exc}", again
                        )
                    log.warning("outbox %s to %s failed: %s", row.id, row.channel, exc)
                    if again is None:
                        failed += 1
                    else:
                        retried += 1
                    continue
                with ctx.db.write() as conn:
                    outbox_store.mark_sent(conn, row.id, ctx.clock.now())
                sent += 1
    return RemindReport(sent=sent, retried=retried, failed=failed)


def remind(ctx: Context) -> RemindReport:
    """Queue what is due, then deliver (the job `run_maintenance` and `certdesk remind` run)."""
    queued = queue_due(ctx)
    delivered = deliver_due(ctx)
    return RemindReport(queued, delivered.sent, delivered.retried, delivered.failed)


@dataclass(frozen=True)
class Delivery:
    id: int
    topic: str
    channel: str
    recipient: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    sent_at: dt.datetime | None


def delivery_log(ctx: Context, state: str | None = None, limit: int = 100) -> list[Delivery]:
    """The outbox, newest first: what was sent, what waits, what failed and why."""
    with ctx.db.read() as conn:
        rows = outbox_store.recent(conn, limit, state)
    return [
        Delivery(
            r.id,
            r.topic,
            r.channel,
            r.recipient,
            r.state,
            r.attempts,
            r.next_attempt_at,
            r.last_error,
            r.sent_at,
        )
        for r in rows
    ]
