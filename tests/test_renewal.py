"""Renewal use cases (services), on SQLite and PostgreSQL, with file keys as the holder's key."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import event, select, update

from certdesk.client.signed import sign_request
from certdesk.domain.clock import FixedClock
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState
from certdesk.services import registry
from certdesk.services.audit_log import list_records, verify_chain
from certdesk.services.certificates import get_certificate
from certdesk.services.crl_publish import publish_crl
from certdesk.services.enrolment import Intent, IssuedCertificate
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.enrolment.renewal import RenewalEnrolment
from certdesk.services.group_commit import Pipeline
from certdesk.services.issuance import Issuance
from certdesk.services.ocsp import OcspResponder
from certdesk.services.ocsp_responders import ensure_responders
from certdesk.services.renewal import Renewals
from certdesk.services.renewal_install import (
    Activation,
    Confirmed,
    Renewed,
    activate_many,
    expire_pending,
)
from certdesk.services.revocation import revoke
from certdesk.services.tokens import register_token
from certdesk.store.certificates import get as get_row
from certdesk.store.certificates import in_flight_renewal
from certdesk.store.ocsp import certificate_and_response
from certdesk.store.tables import crls, people
from request_keys import FileRequestKey
from test_ocsp import openssl_status

DAY = dt.timedelta(days=1)


class Holder:
    """A holder with a file key: enough to speak the protocol without a token."""

    def __init__(self, renewals: Renewals, key: ec.EllipticCurvePrivateKey, serial: str) -> None:
        self.renewals = renewals
        self.key = key
        self.serial = serial

    def signed(self, action: str, payload: dict[str, object] | None = None, **kw: object) -> str:
        key = kw.get("key", self.key)
        serial = kw.get("serial", self.serial)
        nonce = kw.get("nonce") or self.renewals.new_nonce()
        return sign_request(
            FileRequestKey(key),  # type: ignore[arg-type]
            serial=str(serial),
            nonce=str(nonce),
            action=action,
            payload=payload or {},
        )

    def nonce(self) -> str:
        return self.renewals.new_nonce()

    def csr(self, key: ec.EllipticCurvePrivateKey, *names: x509.NameAttribute) -> str:
        der = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name(list(names)))
            .sign(key, hashes.SHA256())
            .public_bytes(Encoding.DER)
        )
        return base64.urlsafe_b64encode(der).rstrip(b"=").decode()

    def renew(self, new_key: ec.EllipticCurvePrivateKey, **kw: object):  # type: ignore[no-untyped-def]
        return asyncio.run(
            self.renewals.renew(self.signed("renew", {"csr": self.csr(new_key)}, **kw))
        )

    def confirm(self, serial: str, key: ec.EllipticCurvePrivateKey | None = None) -> Confirmed:
        """Confirm the renewal `serial`, signed with `key` (the new one, if it is to succeed)."""
        return asyncio.run(
            self.renewals.confirm(self.signed("confirm", serial=serial, key=key or self.key))
        )


@pytest.fixture
def setup(issuance: Issuance) -> tuple[Renewals, Holder]:
    register_token(issuance.ctx, "TOK-1", "SoftHSM")
    key = ec.generate_private_key(ec.SECP256R1())
    issued = issuance.issue(OfficerEnrolment(issuance.ctx, "p-001", key.public_key(), "TOK-1"))
    renewals = Renewals(issuance.ctx, issuance)
    return renewals, Holder(renewals, key, issued.serial)


def clock_of(r: Renewals) -> FixedClock:
    assert isinstance(r.ctx.clock, FixedClock)
    return r.ctx.clock


def test_window_then_two_phase_renewal(setup: tuple[Renewals, Holder]) -> None:
    renewals, holder = setup
    clock = clock_of(renewals)
    start = clock.now()
    new_key = ec.generate_private_key(ec.SECP256R1())

    clock.advance(300 * DAY)
    with pytest.raises(CertdeskError) as refused:
        holder.renew(new_key)
    assert refused.value.code == "renewal.too_early"
    assert "2027-01-30" in refused.value.message("en")  # 2027-03-01 minus 30 days
    assert "2027-01-30" in refused.value.message("zh-CN")

    clock.advance(40 * DAY)  # day 340
    renewed = holder.renew(new_key)
    assert renewed.created and renewed.state is CertState.PENDING_INSTALL
    cert = renewed.certificate
    assert cert.not_valid_before_utc == start + 340 * DAY
    assert cert.not_valid_after_utc == dt.datetime(2028, 2, 4, 9, 30, tzinfo=dt.UTC)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Zhang San"

    # asking again returns the same pending certificate, never a second one
    again = holder.renew(ec.generate_private_key(ec.SECP256R1()))
    assert not again.created and again.serial == renewed.serial
    picked = renewals.pickup(holder.signed("pickup"))
    assert picked.serial == renewed.serial

    # confirmation must be signed with the new key
    with pytest.raises(CertdeskError) as wrong:
        holder.confirm(renewed.serial)
    assert wrong.value.code == "jws.bad_signature"
    done = holder.confirm(renewed.serial, new_key)
    assert done.superseded == holder.serial
    assert holder.confirm(renewed.serial, new_key)
    old = get_certificate(renewals.ctx, holder.serial)
    assert old.state is CertState.SUPERSEDED and old.revocation_reason == "superseded"
    assert get_certificate(renewals.ctx, renewed.serial).state is CertState.ACTIVE

    crl = publish_crl(renewals.ctx).crl
    entry = crl.get_revoked_certificate_by_serial_number(int(holder.serial, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.superseded
    )
    with pytest.raises(CertdeskError) as superseded:
        holder.renew(ec.generate_private_key(ec.SECP256R1()))
    assert superseded.value.code == "renewal.superseded"
    assert renewed.serial in superseded.value.message("en")
    assert verify_chain(renewals.ctx).ok


def test_expired_and_revoked_are_refused_with_what_to_do(setup: tuple[Renewals, Holder]) -> None:
    renewals, holder = setup
    clock_of(renewals).advance(366 * DAY)
    with pytest.raises(CertdeskError) as expired:
        holder.renew(ec.generate_private_key(ec.SECP256R1()))
    assert expired.value.code == "renewal.expired"
    assert "re-enrol" in expired.value.message("en") and "ra@demo.example" in str(expired.value)
    clock_of(renewals).advance(-30 * DAY)
    revoke(renewals.ctx, holder.serial, "keyCompromise")
    with pytest.raises(CertdeskError) as revoked:
        holder.renew(ec.generate_private_key(ec.SECP256R1()))
    assert revoked.value.code == "renewal.revoked" and "keyCompromise" in str(revoked.value)


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("signature", "jws.bad_signature"),
        ("payload", "jws.bad_signature"),
        ("header", "jws.bad_signature"),
        ("other_key", "jws.bad_signature"),
        ("alg_none", "jws.bad_algorithm"),
        ("hs256", "jws.bad_algorithm"),
        ("replay", "nonce.used"),
        ("unknown_nonce", "nonce.invalid"),
        ("expired_nonce", "nonce.expired"),
        ("wrong_action", "jws.wrong_action"),
        ("same_key", "renewal.same_key"),
        ("other_name", "enrolment.identity_change"),
        ("unknown_cert", "renewal.unknown_certificate"),
        ("garbage", "jws.malformed"),
    ],
)
def test_bad_requests_change_nothing(
    setup: tuple[Renewals, Holder], tamper: str, code: str
) -> None:
    renewals, holder = setup
    clock = clock_of(renewals)
    clock.advance(340 * DAY)
    new_key = ec.generate_private_key(ec.SECP256R1())
    good = holder.signed("renew", {"csr": holder.csr(new_key)})
    header, payload, signature = good.split(".")
    other = holder.signed("renew", {"csr": holder.csr(ec.generate_private_key(ec.SECP256R1()))})
    token = {
        "signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        # the signature covers header and payload as sent: another request's either is refused
        "payload": f"{header}.{other.split('.')[1]}.{signature}",
        "header": f"{other.split('.')[0]}.{payload}.{signature}",
        "other_key": holder.signed(
            "renew", {"csr": holder.csr(new_key)}, key=ec.generate_private_key(ec.SECP256R1())
        ),
        "alg_none": jwt.encode(
            {"csr": holder.csr(new_key)},
            None,
            algorithm="none",
            headers={"kid": holder.serial, "nonce": renewals.new_nonce(), "action": "renew"},
        ),
        "hs256": jwt.encode(
            {"csr": holder.csr(new_key)},
            "secret-that-is-long-enough-for-hmac-256",
            algorithm="HS256",
            headers={"kid": holder.serial, "nonce": renewals.new_nonce(), "action": "renew"},
        ),
        "replay": good,
        "unknown_nonce": holder.signed(
            "renew", {"csr": holder.csr(new_key)}, nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ),
        "expired_nonce": good,
        "wrong_action": holder.signed("confirm", {"csr": holder.csr(new_key)}),
        "same_key": holder.signed("renew", {"csr": holder.csr(holder.key)}),
        "other_name": holder.signed(
            "renew",
            {"csr": holder.csr(new_key, x509.NameAttribute(NameOID.COMMON_NAME, "Li Si"))},
        ),
        "unknown_cert": holder.signed("renew", {"csr": holder.csr(new_key)}, serial="abc123"),
        "garbage": "not.a.jws",
    }[tamper]
    if tamper == "replay":
        asyncio.run(renewals.renew(good))
        pending_before = get_certificate(renewals.ctx, holder.serial)
    if tamper == "expired_nonce":
        clock.advance(dt.timedelta(seconds=renewals.ctx.config.renewal.nonce_seconds + 1))
    with pytest.raises(CertdeskError) as refused:
        asyncio.run(renewals.renew(token))
    assert refused.value.code == code
    assert refused.value.message("zh-CN") != refused.value.message("en")
    if tamper == "replay":
        assert get_certificate(renewals.ctx, holder.serial) == pending_before
    else:
        assert get_certificate(renewals.ctx, holder.serial).state is CertState.ACTIVE
        with renewals.ctx.db.read() as conn:
            assert in_flight_renewal(conn, holder.serial) is None
    if tamper == "other_name":
        assert "Li Si" in refused.value.message("en") and "0771" in refused.value.message("en")
    assert verify_chain(renewals.ctx).ok


def test_racing_renewals_issue_one_certificate(setup: tuple[Renewals, Holder]) -> None:
    renewals, holder = setup
    clock_of(renewals).advance(340 * DAY)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)]
    tokens = [holder.signed("renew", {"csr": holder.csr(k)}) for k in keys]
    barrier = threading.Barrier(len(tokens))

    def go(token: str):  # type: ignore[no-untyped-def]
        barrier.wait()
        return asyncio.run(renewals.renew(token))

    with ThreadPoolExecutor(len(tokens)) as pool:
        results = list(pool.map(go, tokens))
    assert len({r.serial for r in results}) == 1
    assert sum(r.created for r in results) == 1


def test_unconfirmed_renewal_is_withdrawn(setup: tuple[Renewals, Holder]) -> None:
    renewals, holder = setup
    clock = clock_of(renewals)
    clock.advance(340 * DAY)
    new_key = ec.generate_private_key(ec.SECP256R1())
    renewed = holder.renew(new_key)
    clock.advance(dt.timedelta(hours=renewals.ctx.config.renewal.pending_hours + 1))
    with pytest.raises(CertdeskError) as late:
        holder.confirm(renewed.serial, new_key)
    assert late.value.code == "renewal.pending_expired"
    assert expire_pending(renewals.ctx) == [renewed.serial]
    record = get_certificate(renewals.ctx, renewed.serial)
    assert record.state is CertState.REVOKED
    assert record.revocation_reason == "cessationOfOperation"
    # the holder may renew again; the old certificate stayed active throughout
    assert get_certificate(renewals.ctx, holder.serial).state is CertState.ACTIVE
    assert holder.renew(ec.generate_private_key(ec.SECP256R1())).created


def test_profile_and_pin_report(setup: tuple[Renewals, Holder]) -> None:
    renewals, holder = setup
    profile = renewals.profile(holder.signed("profile"))
    assert (profile.name, profile.unit, profile.email) == (
        "Zhang San",
        "Finance Bureau",
        "zhang@fin.example",
    )
    assert not profile.decision.allowed and profile.refusal is not None
    assert profile.refusal.code == "renewal.too_early"
    assert profile.pin_changed is False
    assert renewals.report_pin_changed(holder.signed("pin-changed")) == "TOK-1"
    assert renewals.profile(holder.signed("profile")).pin_changed is True


class _Gate:
    """An enrolment request that holds the group committer's worker until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def authorise(self, conn: object) -> Intent:
        self.entered.set()
        assert self.release.wait(30)
        raise CertdeskError("input.invalid", detail="gate")


def test_two_renewals_in_one_group_commit_batch_get_the_same_certificate(
    setup: tuple[Renewals, Holder],
) -> None:
    """With the server's group committer, a second renewal of the same holder that lands in the
    same batch as the first gets the first's pending certificate, not a 409."""
    renewals, holder = setup
    clock_of(renewals).advance(340 * DAY)
    committer = Pipeline(renewals.issuance.advance, renewals.issuance.sign)
    renewals.issue = committer.run
    gate = _Gate()
    held = committer.submit(gate)
    assert gate.entered.wait(30)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    tokens = [holder.signed("renew", {"csr": holder.csr(k)}) for k in keys]
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(asyncio.run, renewals.renew(token)) for token in tokens]
            deadline = time.monotonic() + 30
            while committer._queue.qsize() < 2 and time.monotonic() < deadline:
                time.sleep(0.005)  # both requests queue behind the gate: one batch
            assert committer._queue.qsize() == 2
            gate.release.set()
            results = [f.result(60) for f in futures]
    finally:
        gate.release.set()
        committer.close()
    with pytest.raises(CertdeskError):
        held.result(1)
    assert results[0].serial == results[1].serial
    assert sorted(r.created for r in results) == [False, True]
    assert get_certificate(renewals.ctx, results[0].serial).state is CertState.PENDING_INSTALL


def test_crl_count_includes_superseded_certificates(setup: tuple[Renewals, Holder]) -> None:
    """The number recorded and audited for a CRL is the number of entries it lists."""
    renewals, holder = setup
    ctx = renewals.ctx
    clock_of(renewals).advance(340 * DAY)
    new_key = ec.generate_private_key(ec.SECP256R1())
    renewed = holder.renew(new_key)
    holder.confirm(renewed.serial, new_key)
    assert get_certificate(ctx, holder.serial).state is CertState.SUPERSEDED
    revoke(ctx, renewed.serial, "keyCompromise")

    published = publish_crl(ctx)
    listed = {entry.serial_number for entry in published.crl}
    assert listed == {int(holder.serial, 16), int(renewed.serial, 16)}
    assert published.entries == len(listed) == 2
    with ctx.db.read() as conn:
        recorded = conn.execute(
            select(crls.c.entries).where(
                crls.c.issuer == published.issuer, crls.c.number == published.number
            )
        ).scalar_one()
    assert recorded == 2
    (record, *_) = list_records(ctx, action="crl.publish").records
    assert record.object_id == f"issuing/{published.number}"
    assert record.after is not None and json.loads(record.after)["entries"] == 2


def test_refused_attempts_are_audited_in_bounded_records(setup: tuple[Renewals, Holder]) -> None:
    """Bad algorithm, other key, bad signature, replayed nonce: each kind is counted and written
    as one audit record per window with its count, however many were sent; the chain stays
    intact and the holder's own renewal still works."""
    renewals, holder = setup
    clock = clock_of(renewals)
    clock.advance(340 * DAY)
    new_key = ec.generate_private_key(ec.SECP256R1())
    csr = holder.csr(new_key)
    headers = {"kid": holder.serial, "action": "renew"}
    with pytest.raises(CertdeskError):
        renewals.pickup(holder.signed("pickup"))  # nothing pending yet
    attempts = {
        "jws.bad_algorithm": lambda: jwt.encode(
            {"csr": csr}, None, algorithm="none", headers={**headers, "nonce": holder.nonce()}
        ),
        "jws.bad_signature": lambda: holder.signed(
            "renew", {"csr": csr}, key=ec.generate_private_key(ec.SECP256R1())
        ),
    }
    for _ in range(25):
        for make in attempts.values():
            with pytest.raises(CertdeskError):
                asyncio.run(renewals.renew(make(), source="192.0.2.7"))
    hs256 = jwt.encode(
        {"csr": csr}, "x" * 40, algorithm="HS256", headers={**headers, "nonce": holder.nonce()}
    )
    with pytest.raises(CertdeskError):
        asyncio.run(renewals.renew(hs256, source="192.0.2.8"))
    good = holder.signed("renew", {"csr": csr})
    renewed = asyncio.run(renewals.renew(good))  # the legitimate renewal goes through meanwhile
    for _ in range(10):
        with pytest.raises(CertdeskError) as replay:
            asyncio.run(renewals.renew(good, source="192.0.2.9"))
    assert replay.value.code == "nonce.used"
    assert list_records(renewals.ctx, action="renewal.refused").records == []  # window open

    clock.advance(dt.timedelta(seconds=renewals.ctx.config.renewal.refusal_window_seconds))
    assert renewals.pickup(holder.signed("pickup")).serial == renewed.serial  # writes the window
    records = list_records(renewals.ctx, action="renewal.refused").records
    counted = {r.object_id: json.loads(r.after or "{}") for r in records}
    assert len(records) == 4
    assert counted["jws.bad_algorithm"]["count"] == 26
    assert set(counted["jws.bad_algorithm"]["sources"]) == {"192.0.2.7", "192.0.2.8"}
    assert counted["jws.bad_signature"]["count"] == 25
    assert counted["nonce.used"]["count"] == 10
    assert counted["renewal.nothing_pending"]["count"] == 1
    assert {c["serial"] for c in counted.values()} == {holder.serial}
    assert verify_chain(renewals.ctx).ok


def test_refusals_from_many_serials_stay_bounded(setup: tuple[Renewals, Holder]) -> None:
    """Claimed serials are the attacker's choice: past MAX_KEYS keys they share one record."""
    from certdesk.services.refusals import MAX_KEYS

    renewals, holder = setup
    for n in range(MAX_KEYS * 3):
        with pytest.raises(CertdeskError):
            renewals.profile(holder.signed("profile", serial=format(n + 1, "x")))
    assert renewals.refusals.flush() == MAX_KEYS + 1
    records = list_records(renewals.ctx, action="renewal.refused", limit=100).records
    assert len(records) == MAX_KEYS + 1
    overflow = [json.loads(r.after or "{}") for r in records if r.object_id == "*"]
    assert overflow[0]["count"] == MAX_KEYS * 2
    assert verify_chain(renewals.ctx).ok


def test_a_renewal_reservation_left_by_a_dead_process_does_not_block(
    setup: tuple[Renewals, Holder],
) -> None:
    """Killed between reserving and recording: the next attempt closes the reservation, the one
    after it issues (before, the holder waited for maintenance, ten minutes)."""
    from certdesk.services.issuance import IN_FLIGHT_GRACE
    from test_est_resume import DyingAuthority, Killed

    renewals, holder = setup
    clock = clock_of(renewals)
    clock.advance(340 * DAY)
    real = renewals.issuance.authority
    dying = Issuance(
        renewals.ctx, DyingAuthority(real.signer, real.certificate, real.urls, real.hooks)
    )
    with pytest.raises(Killed):
        asyncio.run(
            Renewals(renewals.ctx, dying).renew(
                holder.signed("renew", {"csr": holder.csr(ec.generate_private_key(ec.SECP256R1()))})
            )
        )
    with renewals.ctx.db.read() as conn:
        stranded = in_flight_renewal(conn, holder.serial)
    assert stranded is not None and stranded.state == "reserved"
    clock.advance(IN_FLIGHT_GRACE + dt.timedelta(seconds=1))
    with pytest.raises(CertdeskError) as busy:
        holder.renew(ec.generate_private_key(ec.SECP256R1()))
    assert busy.value.code == "renewal.in_progress"
    assert get_certificate(renewals.ctx, stranded.serial).state is CertState.ABANDONED
    renewed = holder.renew(ec.generate_private_key(ec.SECP256R1()))
    assert renewed.created and renewed.state is CertState.PENDING_INSTALL
    assert verify_chain(renewals.ctx).ok


def holder_of(issuance: Issuance, renewals: Renewals, person_id: str) -> Holder:
    """A holder of a new certificate for `person_id` (registered, without one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    issued = issuance.issue(OfficerEnrolment(issuance.ctx, person_id, key.public_key()))
    return Holder(renewals, key, issued.serial)


def renewal_request(
    renewals: Renewals, holder: Holder, nonce: str | None = None, est: bool = False
) -> RenewalEnrolment:
    """What `Renewals.renew` (or, with `est`, `reenroll`) hands the issuing path, for a batch."""
    token = holder.signed("renew", nonce=nonce)
    current, signed, _payload = renewals.holders.authenticate(token, "renew")
    der = base64.urlsafe_b64decode(holder.csr(ec.generate_private_key(ec.SECP256R1())) + "==")
    csr = x509.load_der_x509_csr(der)
    if est:
        return RenewalEnrolment.from_csr(renewals.ctx, current, csr, method="est_reenrol")
    return RenewalEnrolment.from_csr(renewals.ctx, current, csr, signed.nonce, renewals.nonces)


def test_one_batch_answers_each_renewal_in_its_place(
    setup: tuple[Renewals, Holder], issuance: Issuance
) -> None:
    """Renewals group-committed together are authorised in one go (one read per kind of row),
    yet each gets the answer it would get alone, in its place: a reused nonce, a second request
    for one certificate, a revoked, a too-early and a departed holder's are refused; a renewal
    left unconfirmed is withdrawn once, for the first request that meets it."""
    renewals, a = setup
    ctx = renewals.ctx
    for n in range(2, 8):
        registry.add_person(ctx, f"p-00{n}", f"Person {n}", "FIN", f"p{n}@fin.example")

    b, c, e, f, g = (holder_of(issuance, renewals, f"p-00{n}") for n in (2, 3, 5, 6, 7))
    clock = clock_of(renewals)
    clock.advance(340 * DAY)
    d = holder_of(issuance, renewals, "p-004")  # issued today: its window opens in eleven months
    stale = g.renew(ec.generate_private_key(ec.SECP256R1())).serial
    revoke(ctx, c.serial, "keyCompromise")
    clock.advance(dt.timedelta(hours=ctx.config.renewal.pending_hours + 1))
    with ctx.db.write() as conn:  # as if departed before departures revoked certificates
        conn.execute(update(people).where(people.c.person_id == "p-005").values(state="departed"))

    reused = renewals.new_nonce()

    def request(holder: Holder, nonce: str | None = None, est: bool = False) -> RenewalEnrolment:
        return renewal_request(renewals, holder, nonce, est)

    outcomes = issuance.issue_batch(
        [
            request(a, reused),
            request(b, reused),
            request(a),
            request(c),
            request(d),
            request(e),
            request(g),
            request(b),
            request(g),
            request(f, est=True),
        ]
    )

    def answer(outcome: IssuedCertificate | CertdeskError) -> tuple[object, ...]:
        if isinstance(outcome, CertdeskError):
            return (outcome.code, sorted(outcome.params))
        with ctx.db.read() as conn:
            row = get_row(conn, outcome.serial)
        assert row is not None
        return ("issued", row.person_id, row.replaces, row.state)

    pending = CertState.PENDING_INSTALL.value
    assert [answer(o) for o in outcomes] == [
        ("issued", "p-001", a.serial, pending),
        ("nonce.used", []),
        ("renewal.in_progress", ["serial"]),
        ("renewal.revoked", ["contacts", "reason"]),
        ("renewal.too_early", ["days", "not_after", "opens_at"]),
        ("person.departed", ["person_id"]),
        ("issued", "p-007", g.serial, pending),
        ("issued", "p-002", b.serial, pending),
        ("renewal.in_progress", ["serial"]),
        ("issued", "p-006", f.serial, pending),
    ]
    refused = [o for o in outcomes if isinstance(o, CertdeskError)]
    assert refused[1].params["serial"] == a.serial and refused[-1].params["serial"] == g.serial
    assert refused[2].params["reason"] == "keyCompromise"
    assert refused[4].params["person_id"] == "p-005"
    for holder, outcome in ((a, outcomes[0]), (b, outcomes[7]), (g, outcomes[6])):
        assert isinstance(outcome, IssuedCertificate)
        with ctx.db.read() as conn:
            in_flight = in_flight_renewal(conn, holder.serial)
        assert in_flight is not None and in_flight.serial == outcome.serial
    for holder in (c, d, e):
        with ctx.db.read() as conn:
            assert in_flight_renewal(conn, holder.serial) is None
    withdrawn = get_certificate(ctx, stale)
    assert withdrawn.state is CertState.REVOKED
    assert withdrawn.revocation_reason == "cessationOfOperation"
    page = list_records(ctx, action="certificate.revoke")
    revocations = [r for r in page.records if r.object_id == stale]
    assert len(revocations) == 1
    with pytest.raises(CertdeskError) as again:  # every nonce of the batch is spent
        a.renew(ec.generate_private_key(ec.SECP256R1()), nonce=reused)
    assert again.value.code == "nonce.used"


def test_a_batch_of_renewals_costs_the_statements_of_one(
    setup: tuple[Renewals, Holder], issuance: Issuance
) -> None:
    """Group commit's point for renewals: a batch is authorised, reserved and recorded with as
    many statements as a single renewal (counted on the engine, so independent of load)."""
    renewals, _ = setup
    ctx = renewals.ctx
    for n in range(2, 7):
        registry.add_person(ctx, f"p-00{n}", f"Person {n}", "FIN", f"p{n}@fin.example")
    holders = [holder_of(issuance, renewals, f"p-00{n}") for n in range(2, 7)]
    clock_of(renewals).advance(340 * DAY)
    executed: list[str] = []

    def count(*args: object) -> None:
        executed.append(str(args[2]))

    counts = []
    event.listen(ctx.db.engine, "before_cursor_execute", count)
    try:
        for batch in (holders[:1], holders[1:]):
            requests = [renewal_request(renewals, holder) for holder in batch]
            executed.clear()
            outcomes = issuance.issue_batch(requests)
            assert all(isinstance(o, IssuedCertificate) for o in outcomes)
            counts.append(len(executed))
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", count)
    assert counts[0] == counts[1], executed


def test_confirmations_share_one_batch_each_answered_in_its_place(
    setup: tuple[Renewals, Holder],
) -> None:
    """The server's confirmation batch (`activate_many`): two holders, a retried confirmation,
    a replayed nonce and an unknown serial in one call; each gets its own answer, the two new
    certificates are active and the old ones superseded, one audit record per move, chain
    intact. The same confirmation twice in one batch loses the race once and is done again one
    by one: both are answered as confirmed."""
    renewals, zhang = setup
    ctx = renewals.ctx
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    key = ec.generate_private_key(ec.SECP256R1())
    li = Holder(
        renewals,
        key,
        renewals.issuance.issue(OfficerEnrolment(ctx, "p-002", key.public_key())).serial,
    )
    clock_of(renewals).advance(340 * DAY)
    new = [h.renew(ec.generate_private_key(ec.SECP256R1())).serial for h in (zhang, li)]
    replayed = renewals.new_nonce()
    batch = [
        Activation(new[0], "holder:p-001", renewals.new_nonce()),
        Activation(new[1], "holder:p-002", replayed),
        Activation(new[1], "holder:p-002", replayed),  # the same nonce again: refused
        Activation("abc123", "holder:p-002", renewals.new_nonce()),
    ]
    outcomes = activate_many(ctx, renewals.nonces, batch)
    assert outcomes[:2] == [Confirmed(new[0], zhang.serial), Confirmed(new[1], li.serial)]
    assert isinstance(outcomes[2], CertdeskError) and outcomes[2].code == "nonce.used"
    assert isinstance(outcomes[3], CertdeskError) and outcomes[3].code == "cert.not_found"
    for serial, state in [(new[0], "active"), (new[1], "active"), (zhang.serial, "superseded")]:
        assert get_certificate(ctx, serial).state.value == state
    again = activate_many(ctx, None, [Activation(new[0], "holder:p-001")] * 2)
    assert again == [Confirmed(new[0], zhang.serial)] * 2  # retried: as the first time
    actions = [
        (r.action, r.object_id)
        for r in list_records(ctx, limit=20).records
        if r.action in ("certificate.supersede", "certificate.activate")
    ]
    assert sorted(actions) == sorted(
        [
            ("certificate.supersede", zhang.serial),
            ("certificate.activate", new[0]),
            ("certificate.supersede", li.serial),
            ("certificate.activate", new[1]),
        ]
    )
    assert verify_chain(ctx).ok


def test_the_same_confirmation_twice_in_one_batch(setup: tuple[Renewals, Holder]) -> None:
    """Sent twice at once (a retry racing the first): the batch loses the race on the second
    move, is done again one by one, and both answers say confirmed."""
    renewals, holder = setup
    clock_of(renewals).advance(340 * DAY)
    new = holder.renew(ec.generate_private_key(ec.SECP256R1())).serial
    twice = [Activation(new, "holder:p-001", renewals.new_nonce()) for _ in range(2)]
    assert (
        activate_many(renewals.ctx, renewals.nonces, twice) == [Confirmed(new, holder.serial)] * 2
    )
    assert get_certificate(renewals.ctx, holder.serial).state.value == "superseded"


def test_a_confirmation_is_recorded_with_the_superseded_answer(
    setup: tuple[Renewals, Holder], tmp_path: Path
) -> None:
    """With the server's OCSP responder, the superseded certificate's "revoked" is saved with
    the confirmation: `openssl ocsp` reads it from the store at once, the change feed has nothing
    left to sign and the commit wakes nobody. Without a responder the commit wakes the feed."""
    renewals, zhang = setup
    ctx = renewals.ctx
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    key = ec.generate_private_key(ec.SECP256R1())
    issued = renewals.issuance.issue(OfficerEnrolment(ctx, "p-002", key.public_key()))
    li = Holder(renewals, key, issued.serial)
    clock_of(renewals).advance(340 * DAY)
    ensure_responders(ctx)  # a responder valid on day 340
    responder = OcspResponder(ctx)
    new = [h.renew(ec.generate_private_key(ec.SECP256R1())).serial for h in (zhang, li)]
    responder.apply_changes()
    woken: list[int] = []
    ctx.db.after_commit(lambda: woken.append(1))

    answered = activate_many(ctx, None, [Activation(new[0], "holder:p-001")], responder.answers_for)
    assert answered == [Confirmed(new[0], zhang.serial)] and woken == []
    with ctx.db.read() as conn:
        _row, stored = certificate_and_response(conn, issued.issuer, zhang.serial)
    assert stored is not None
    out = openssl_status(ctx, tmp_path, bytes(stored.der), int(zhang.serial, 16))
    assert ": revoked" in out and "Reason: superseded" in out
    assert responder.apply_changes() == []

    assert activate_many(ctx, None, [Activation(new[1], "holder:p-002")]) == [
        Confirmed(new[1], li.serial)
    ]
    assert woken == [1]
    assert responder.apply_changes() == [li.serial]


def test_renew_and_confirm_await_the_batches_without_a_thread(
    setup: tuple[Renewals, Holder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The served routes: renewal and confirmation are checked on the event loop and their
    group committers' batches awaited — no thread for either; a second renewal of the same
    certificate gets the first's (a thread waits for it, as before); a refusal is still
    counted, with its source, and written with the window."""
    served, holder = setup
    committer = Pipeline(served.issuance.advance, served.issuance.sign)
    renewals = Renewals(
        served.ctx,
        served.issuance,
        issue=committer.run,
        submit=committer.submit,
        group_confirmations=True,
    )
    holder = Holder(renewals, holder.key, holder.serial)
    clock = clock_of(renewals)
    clock.advance(340 * DAY)
    handed: list[object] = []
    to_thread = asyncio.to_thread

    async def recorded(work: Callable[..., object], *args: object) -> object:
        handed.append(work)
        return await to_thread(work, *args)

    monkeypatch.setattr(asyncio, "to_thread", recorded)
    new_key = ec.generate_private_key(ec.SECP256R1())

    def token(key: ec.EllipticCurvePrivateKey) -> str:
        return holder.signed("renew", {"csr": holder.csr(key)})

    async def renew_and_confirm() -> tuple[list[Renewed], Confirmed]:
        first = await renewals.renew(token(new_key))
        again = await asyncio.gather(
            *(renewals.renew(token(ec.generate_private_key(ec.SECP256R1()))) for _ in "ab")
        )
        handed_before = list(handed)
        confirmed = await renewals.confirm(
            holder.signed("confirm", key=new_key, serial=first.serial)
        )
        assert handed == handed_before  # the confirmation took no thread either
        return [first, *again], confirmed

    try:
        (first, *again), confirmed = asyncio.run(renew_and_confirm())
        forged = holder.signed("renew", {"csr": "x"}, key=ec.generate_private_key(ec.SECP256R1()))
        with pytest.raises(CertdeskError) as refused:
            asyncio.run(renewals.renew(forged, "192.0.2.44"))
    finally:
        committer.close()
    assert first.created and first.state is CertState.PENDING_INSTALL
    assert {r.serial for r in again} == {first.serial} and not any(r.created for r in again)
    assert [getattr(work, "__name__", "") for work in handed] == ["await_pending"] * 2 + ["note"]
    assert (confirmed.serial, confirmed.superseded) == (first.serial, holder.serial)
    assert get_certificate(renewals.ctx, first.serial).state is CertState.ACTIVE
    assert refused.value.code == "jws.bad_signature"
    clock.advance(dt.timedelta(seconds=renewals.ctx.config.renewal.refusal_window_seconds))
    assert renewals.refusals.flush_due() == 1
    (record,) = list_records(renewals.ctx, action="renewal.refused").records
    assert json.loads(record.after or "{}")["sources"] == ["192.0.2.44"]
