"""Expiry reminders: the rule, the outbox, e-mail to a real loopback SMTP server (aiosmtpd)
and webhooks to a real loopback HTTP receiver that checks the HMAC."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.asymmetric import ec

from certdesk.domain.clock import FixedClock
from certdesk.domain.reminders import (
    ReminderCandidate,
    RetryPolicy,
    due_threshold,
    parse_thresholds,
)
from certdesk.domain.states import CertState, PersonState
from certdesk.services import registry
from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.maintenance import run_maintenance
from certdesk.services.reminders import deliver_due, delivery_log, plan, queue_due, remind
from certdesk.services.renewal import Renewals
from certdesk.services.revocation import revoke
from certdesk.services.tokens import register_token
from test_renew_faketime import _libfaketime
from test_renewal import Holder
from test_web import CERTDESK, free_port

DAY = dt.timedelta(days=1)
END = dt.datetime(2027, 3, 1, 9, 30, tzinfo=dt.UTC)  # the conftest START + 1 year
THRESHOLDS = (30, 14, 7, 1, 0)


def cand(not_after: dt.datetime, **kw: Any) -> ReminderCandidate:
    values: dict[str, Any] = {
        "state": CertState.ACTIVE,
        "holder_state": PersonState.ACTIVE,
        "renewed": False,
    }
    return ReminderCandidate("ab", not_after, **(values | kw))


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (END - 31 * DAY, None),
        (dt.datetime(2027, 1, 30, 0, 0, tzinfo=dt.UTC), 30),  # 30 calendar days before
        (END - 15 * DAY, 30),
        (END - 14 * DAY, 14),
        (END - 2 * DAY, 7),
        (END - DAY, 1),
        (dt.datetime(2027, 3, 1, 0, 0, tzinfo=dt.UTC), 0),
        (dt.datetime(2027, 3, 1, 23, 59, tzinfo=dt.UTC), 0),  # expired today: still told
        (dt.datetime(2027, 3, 2, 0, 0, tzinfo=dt.UTC), None),
    ],
)
def test_the_smallest_threshold_reached_is_due(now: dt.datetime, due: int | None) -> None:
    found = due_threshold(cand(END), THRESHOLDS, now)
    assert (found and found.threshold) == due


@pytest.mark.parametrize(
    "change",
    [
        {"state": CertState.REVOKED},
        {"state": CertState.SUPERSEDED},
        {"holder_state": PersonState.DEPARTED},
        {"renewed": True},
    ],
)
def test_no_reminder_for_revoked_superseded_departed_or_renewed(change: dict[str, Any]) -> None:
    assert due_threshold(cand(END), THRESHOLDS, END - DAY) is not None
    assert due_threshold(cand(END, **change), THRESHOLDS, END - DAY) is None


def test_thresholds_and_backoff() -> None:
    assert parse_thresholds("0, 7,30") == (30, 7, 0)
    for bad in ("", "7,7", "-1", "x"):
        with pytest.raises(ValueError):
            parse_thresholds(bad)
    now = END
    retry = RetryPolicy(max_attempts=4, base=dt.timedelta(minutes=1))
    assert [retry.after_failure(n, now) for n in (1, 2, 3, 4)] == [
        now + dt.timedelta(minutes=1),
        now + dt.timedelta(minutes=2),
        now + dt.timedelta(minutes=4),
        None,
    ]


class Inbox:
    """aiosmtpd handler keeping what it received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def with_smtp(ctx: Context, port: int, **remind: Any) -> Context:
    config = ctx.config.replace(
        smtp={"host": "127.0.0.1", "port": port, "security": "none"},
        remind=remind,
        urls={"base": "https://pki.example"},
    )
    return Context(config, ctx.db, ctx.clock, ctx.actor)


def issue(issuance: Issuance, person_id: str, token: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    register_token(issuance.ctx, token, "SoftHSM")
    key = ec.generate_private_key(ec.SECP256R1())
    issued = issuance.issue(OfficerEnrolment(issuance.ctx, person_id, key.public_key(), token))
    return issued.serial, key


def test_a_year_of_reminders(issuance: Issuance, smtp: tuple[Inbox, int]) -> None:
    """Each threshold: exactly one mail per holder, in their language; renewing stops it."""
    inbox, port = smtp
    base = issuance.ctx
    registry.add_person(base, "p-002", "Jane Roe", "FIN", "jane@fin.example")
    registry.set_locale(base, "p-002", "en")
    registry.add_person(base, "p-003", "Wang Wu", "FIN", "wang@fin.example")
    issue(issuance, "p-001", "TOK-1")
    serial_2, key_2 = issue(issuance, "p-002", "TOK-2")
    serial_3, _ = issue(issuance, "p-003", "TOK-3")
    ctx = with_smtp(base, port)
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    holder_2 = Holder(Renewals(issuance.ctx, issuance), key_2, serial_2)
    departed = False
    for _ in range(400):
        clock.advance(DAY)
        if clock.now().date() == dt.date(2027, 2, 20):  # between the 14- and 7-day reminders
            holder_2.renew(ec.generate_private_key(ec.SECP256R1()))
        if clock.now().date() == dt.date(2027, 2, 10) and not departed:
            revoke(ctx, serial_3, "affiliationChanged")
            departed = True
        remind(ctx)
        assert remind(ctx).queued == 0  # a second job the same day finds nothing new

    def to(address: str) -> list[EmailMessage]:
        return [m for m in inbox.messages if m["To"] == address]

    zhang = to("zhang@fin.example")
    assert len(zhang) == 5
    assert [m["Content-Language"] for m in zhang] == ["zh-CN"] * 5
    assert zhang[0]["Subject"] == "您的证书将在 30 天后到期（2027-03-01）"
    assert zhang[-1]["Subject"] == "您的证书今天到期（2027-03-01）"
    body = zhang[0].get_body(("plain",))
    assert body is not None and "https://pki.example/" in body.get_content()
    assert "ra@demo.example" in body.get_content()  # the support contacts
    html = zhang[0].get_body(("html",))
    assert html is not None and "<ol>" in html.get_content()

    jane = to("jane@fin.example")
    assert [m["Subject"] for m in jane] == [
        "Your certificate expires in 30 days (2027-03-01)",
        "Your certificate expires in 14 days (2027-03-01)",
    ]
    assert len(to("wang@fin.example")) == 1  # 30 days; revoked before the 14-day one
    assert len({m["Message-ID"] for m in inbox.messages}) == len(inbox.messages)

    digests = to("it@fin.example")
    days = [m["Subject"].rsplit("（", 1)[1] for m in digests]
    assert len(days) == len(set(days))  # at most one a day
    assert days[0] == "2027-01-30）"  # the window opened
    first = digests[0].get_body(("plain",))
    assert first is not None and "Zhang San" in first.get_content()
    last = digests[-1].get_body(("plain",))
    assert last is not None and "Jane Roe" not in last.get_content()  # renewed
    assert all(d.state == "sent" for d in delivery_log(ctx, limit=1000))


def test_two_jobs_queue_once(issuance: Issuance, smtp: tuple[Inbox, int]) -> None:
    serial, _ = issue(issuance, "p-001", "TOK-1")
    ctx = with_smtp(issuance.ctx, smtp[1])
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.current = END - 3 * DAY
    assert {p.topic for p in plan(ctx)} == {f"reminder:{serial}:7", "digest:FIN:2027-02-26"}
    counts: list[int] = []
    jobs = [threading.Thread(target=lambda: counts.append(queue_due(ctx))) for _ in range(4)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert sorted(counts)[-1] == 2 and sum(counts) == 2  # the holder's mail and the digest
    assert deliver_due(ctx).sent == 2 and len(smtp[0].messages) == 2
    assert plan(ctx) == []


class Receiver(BaseHTTPRequestHandler):
    secret = b""
    failures_left = 0
    received: list[tuple[str, bytes, bool]] = []  # noqa: RUF012  (set per test)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        good = hmac.compare_digest(
            self.headers["X-Certdesk-Signature"],
            "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest(),
        )
        type(self).received.append((self.headers["X-Certdesk-Delivery"], body, good))
        failing = not good or type(self).failures_left > 0
        if good:
            type(self).failures_left -= 1
        self.send_response(500 if failing else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[type[Receiver], int]]:
    handler = type("R", (Receiver,), {"secret": b"s3cret", "received": [], "failures_left": 3})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, server.server_address[1]
    server.shutdown()


def test_webhook_retried_until_accepted(
    issuance: Issuance, receiver: tuple[type[Receiver], int], tmp_path: Any
) -> None:
    handler, port = receiver
    serial, _ = issue(issuance, "p-001", "TOK-1")
    secrets = tmp_path / "hooks"
    secrets.mkdir()
    (secrets / "chat").write_bytes(b"s3cret\n")
    (secrets / "down").write_bytes(b"other")
    config = issuance.ctx.config.replace(
        remind={
            "webhooks": f"chat=http://127.0.0.1:{port}/hook, down=http://127.0.0.1:{port}/x",
            "webhook_secrets_dir": str(secrets),
            "digest": False,
            "max_attempts": 4,
        }
    )
    ctx = Context(config, issuance.ctx.db, issuance.ctx.clock)
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    clock.current = END - 20 * DAY
    handler.failures_left = 3
    assert queue_due(ctx) == 3  # the e-mail waits for [smtp], the two webhooks go
    for _ in range(6):
        deliver_due(ctx)
        clock.advance(dt.timedelta(minutes=10))
    chat = [r for r in handler.received if r[2]]
    assert len(chat) == 4 and len({r[0] for r in chat}) == 1  # one delivery, tried four times
    event = json.loads(chat[-1][1])
    assert (event["event"], event["serial"], event["threshold"]) == (
        "certificate.expiring",
        serial,
        30,
    )
    log = {d.channel: d for d in delivery_log(ctx)}
    assert (log["webhook:chat"].state, log["webhook:chat"].attempts) == ("sent", 4)
    # the endpoint whose secret does not match is refused every time and ends as failed
    assert (log["webhook:down"].state, log["webhook:down"].attempts) == ("failed", 4)
    assert "500" in (log["webhook:down"].last_error or "")


class KillingInbox(Inbox):
    """Takes the first mail, then SIGKILLs the sending job before it can mark it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.victim: subprocess.Popen[bytes] | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if self.victim is not None:
            self.victim.send_signal(signal.SIGKILL)
            self.victim.wait()
            self.victim = None
        return answer


def test_killed_between_send_and_mark_loses_nothing(issuance: Issuance, tmp_path: Any) -> None:
    """At-least-once: the mail the killed job handed over is sent again after the lease, with
    the same Message-ID; nothing is lost, and nothing is sent while the lease holds."""
    issue(issuance, "p-001", "TOK-1")
    inbox, port = KillingInbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "CERTDESK_PATHS_DATA_DIR": str(tmp_path / "var"),
        "CERTDESK_DATABASE_URL": issuance.ctx.config.database_url,
        "CERTDESK_SMTP_HOST": "127.0.0.1",
        "CERTDESK_SMTP_PORT": str(port),
        "CERTDESK_SMTP_SECURITY": "none",
        "CERTDESK_REMIND_LEASE_SECONDS": "300",
        "LD_PRELOAD": str(_libfaketime()),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }

    def job(at: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [CERTDESK, "remind", "--json"],
            cwd=tmp_path,
            env={**env, "FAKETIME": f"@{at}"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    dry = subprocess.run(
        [CERTDESK, "remind", "--dry-run", "--json"],
        cwd=tmp_path,
        env={**env, "FAKETIME": "@2027-02-09 09:59:00"},
        capture_output=True,
        text=True,
        check=True,
    )
    listed = json.loads(dry.stdout)
    assert sorted(p["channel"] + " " + p["recipient"] for p in listed) == [
        "email it@fin.example",
        "email zhang@fin.example",
    ]
    assert delivery_log(issuance.ctx) == []  # a dry run writes nothing
    try:
        inbox.victim = first = job("2027-02-09 10:00:00")  # 20 days before the end
        first.wait(timeout=60)
        assert first.returncode == -signal.SIGKILL
        assert len(inbox.messages) == 1
        # restarted at once: the lease still holds, nothing is sent twice
        second = job("2027-02-09 10:01:00")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert json.loads(out)["sent"] == 0 and len(inbox.messages) == 1
        # after the lease: everything goes, the interrupted mail again under the same Message-ID
        third = job("2027-02-09 10:06:00")
        out, err = third.communicate(timeout=60)
        assert third.returncode == 0, err
    finally:
        controller.stop()
    assert json.loads(out)["sent"] == 2  # the holder's reminder and the unit's digest
    ids = [m["Message-ID"] for m in inbox.messages]
    assert len(ids) == 3 and len(set(ids)) == 2 and ids[0] == ids[1]
    assert {m["To"] for m in inbox.messages} == {"zhang@fin.example", "it@fin.example"}
    assert {d.state for d in delivery_log(issuance.ctx)} == {"sent"}


def test_maintenance_sends_once_a_channel_is_configured(
    issuance: Issuance, smtp: tuple[Inbox, int]
) -> None:
    issue(issuance, "p-001", "TOK-1")
    assert isinstance(issuance.ctx.clock, FixedClock)
    issuance.ctx.clock.current = END - 7 * DAY
    assert run_maintenance(issuance.ctx).reminders.queued == 0  # no [smtp], no webhook
    assert delivery_log(issuance.ctx) == []
    report = run_maintenance(with_smtp(issuance.ctx, smtp[1])).reminders
    assert (report.queued, report.sent, report.failed) == (2, 2, 0)
    assert {m["To"] for m in smtp[0].messages} == {"zhang@fin.example", "it@fin.example"}
