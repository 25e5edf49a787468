"""The OCSP responder in one process, on SQLite and PostgreSQL: the delegated responder
certificate (pkilint, renewal at half its life), pre-signed responses checked by `openssl ocsp`,
a stale stored response never served, and a revocation in this process re-signed at once.

Whole-process checks (`certdesk serve` with `openssl ocsp`, curl and nginx) are in
tests/test_ocsp_serve.py."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import NoReturn

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certdesk.ca.ocsp import (
    MALFORMED,
    UNAUTHORIZED,
    Question,
    canonical_question,
    file_name,
    request_der,
)
from certdesk.domain.clock import FixedClock
from certdesk.domain.lifecycle import ON_CRL, RevocationStatus, Status, revocation_status
from certdesk.services.authorities import ISSUING, ROOT, load_authority
from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance, IssuedCertificate
from certdesk.services.jobs import JobRunner
from certdesk.services.ocsp import OcspResponder, Served
from certdesk.services.ocsp_responders import ensure_responders, load_responders
from certdesk.services.registry import add_person
from certdesk.services.revocation import revoke
from certdesk.store import audit
from conftest import openssl
from test_lint import lint_cli


def enrol(ctx: Context, person_id: str, issuance: Issuance | None = None) -> IssuedCertificate:
    add_person(ctx, person_id, f"Holder {person_id}", "FIN", f"{person_id}@fin.example")
    key = ec.generate_private_key(ec.SECP256R1())
    return (issuance or Issuance(ctx)).issue(OfficerEnrolment(ctx, person_id, key.public_key()))


def enrol_filed(
    ctx: Context, person_id: str, issuance: Issuance | None = None
) -> IssuedCertificate:
    """`enrol`, for a certificate whose pre-signed response gets a file: one in 64 requests
    encodes to base64 ending in `/`, which no file can be named (nginx then hands the request
    to certdesk), so such a certificate is set aside and another person enrolled."""
    issuing = load_authority(ctx, ISSUING).certificate
    assert issuing is not None
    for attempt in range(8):
        issued = enrol(ctx, f"{person_id}-{attempt}" if attempt else person_id, issuance)
        name = file_name(request_der(canonical_question(issuing, issued.certificate.serial_number)))
        if not name.endswith("/"):
            return issued
    raise AssertionError("eight file names in a row ending in /")


def pem_files(ctx: Context, tmp_path: Path) -> tuple[Path, Path]:
    """issuing.pem and root.pem for `openssl ocsp -issuer … -CAfile …`."""
    out = []
    for name in (ISSUING, ROOT):
        cert = load_authority(ctx, name).certificate
        assert cert is not None
        path = tmp_path / f"{name}.pem"
        path.write_bytes(cert.public_bytes(Encoding.PEM))
        out.append(path)
    return out[0], out[1]


def openssl_status(ctx: Context, tmp_path: Path, response: bytes, serial: int) -> str:
    """What `openssl ocsp -respin` says of `serial` (signature and chain checked at the test
    clock's time; its status times are a year from the real time at most)."""
    issuing, root = pem_files(ctx, tmp_path)
    resp = tmp_path / "resp.der"
    resp.write_bytes(response)
    at = str(int(ctx.clock.now().timestamp()))
    done = openssl(
        "ocsp",
        "-respin",
        resp,
        "-issuer",
        issuing,
        "-CAfile",
        root,
        "-serial",
        hex(serial),
        "-attime",
        at,
        "-validity_period",
        str(2 * 366 * 86400),
    )
    assert "Response verify OK" in done.stderr + done.stdout, done.stderr
    return done.stdout


def test_responder_certificate(ca_ctx: Context, clock: FixedClock, tmp_path: Path) -> None:
    assert len(ensure_responders(ca_ctx)) == 2  # the root's and the issuing CA's
    serial = load_responders(ca_ctx)[ISSUING].serial
    assert ensure_responders(ca_ctx) == []  # one is enough while it has half its life
    responder = load_responders(ca_ctx)[ISSUING]
    cert = responder.key.certificate
    issuing = load_authority(ca_ctx, ISSUING).certificate
    assert issuing is not None
    cert.verify_directly_issued_by(issuing)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    life = cert.not_valid_after_utc - clock.now()
    assert life <= dt.timedelta(days=ca_ctx.config.ocsp.responder_days)
    for each in load_responders(ca_ctx).values():  # the root's and the issuing CA's
        each.key.certificate.verify_directly_issued_by(each.issuer.certificate)
        result = lint_cli(each.key.certificate, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    with ca_ctx.db.read() as conn:
        actions = [r.action for r in audit.iter_records(conn)]
    assert actions.count("ocsp.responder_issue") == 2
    clock.advance(dt.timedelta(days=ca_ctx.config.ocsp.responder_days / 2, minutes=1))
    assert len(ensure_responders(ca_ctx)) == 2
    assert load_responders(ca_ctx)[ISSUING].serial != serial


def test_presigned_responses_follow_the_status(ca_ctx: Context, tmp_path: Path) -> None:
    issued = enrol_filed(ca_ctx, "p-ocsp")
    responder = OcspResponder(ca_ctx)
    report = responder.presign()
    assert report.signed >= 2  # the holder's and the responder's own certificate
    assert responder.presign().signed == 0  # nothing due a second time
    issuing = load_authority(ca_ctx, ISSUING).certificate
    assert issuing is not None
    question = canonical_question(issuing, issued.certificate.serial_number)
    path = responder.file_path(question)
    out = openssl_status(ca_ctx, tmp_path, path.read_bytes(), question.serial)
    assert ": good" in out
    revoke(ca_ctx, issued.serial, "keyCompromise")
    assert responder.apply_changes() == [issued.serial]
    out = openssl_status(ca_ctx, tmp_path, path.read_bytes(), question.serial)
    assert ": revoked" in out and "Reason: keyCompromise" in out


def test_a_certificate_is_recorded_with_its_first_answer(
    ca_ctx: Context, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As `serve` issues: the response is stored with the certificate, so the feed has nothing
    to sign and the commit does not wake it; the feed's next run writes its file (not the
    committing thread); a responder that fails costs that shortcut only: the certificate is
    issued and the feed signs its answer."""
    responder = OcspResponder(ca_ctx)
    responder.presign()
    woken: list[int] = []
    ca_ctx.db.after_commit(lambda: woken.append(1))
    issued = enrol_filed(ca_ctx, "p-first", Issuance(ca_ctx, answers=responder.answers_for))
    assert woken == []
    issuing = load_authority(ca_ctx, ISSUING).certificate
    assert issuing is not None
    question = canonical_question(issuing, issued.certificate.serial_number)
    path = responder.file_path(question)
    assert not path.exists()  # nginx hands the request to certdesk meanwhile
    assert responder.apply_changes() == []
    out = openssl_status(ca_ctx, tmp_path, path.read_bytes(), question.serial)
    assert ": good" in out

    def broken(issued: object) -> NoReturn:
        raise RuntimeError("responder key unreadable")

    unanswered = enrol(ca_ctx, "p-first-broken", Issuance(ca_ctx, answers=broken))
    assert "OCSP responses not signed with the change" in caplog.text
    assert responder.apply_changes() == [unanswered.serial]


def answer(responder: OcspResponder, request: bytes) -> Served:
    found = responder.cached(request)
    return found if isinstance(found, Served) else responder.answer(found)


def test_a_stale_stored_response_is_never_served(ca_ctx: Context, tmp_path: Path) -> None:
    """The change feed did not run (no server): the stored response says good, the
    certificate is revoked; the answer is revoked, signed now, and replaces the stored one."""
    issued = enrol_filed(ca_ctx, "p-stale")
    responder = OcspResponder(ca_ctx)
    responder.presign()
    issuing = load_authority(ca_ctx, ISSUING).certificate
    assert issuing is not None
    question = canonical_question(issuing, issued.certificate.serial_number)
    before = responder.file_path(question).read_bytes()
    revoke(ca_ctx, issued.serial, "affiliationChanged")
    got = answer(responder, request_der(question))
    out = openssl_status(ca_ctx, tmp_path, got.der, question.serial)
    assert ": revoked" in out and "affiliationChanged" in out
    assert responder.file_path(question).read_bytes() not in (before,)


def test_unknown_malformed_unauthorized(ca_ctx: Context, tmp_path: Path) -> None:
    responder = OcspResponder(ca_ctx)
    responder.presign()
    issuing = load_authority(ca_ctx, ISSUING).certificate
    assert issuing is not None
    unknown = answer(responder, request_der(canonical_question(issuing, 0x1234567)))
    assert ": unknown" in openssl_status(ca_ctx, tmp_path, unknown.der, 0x1234567)
    assert answer(responder, b"\x30\x03garbage").der == MALFORMED
    assert answer(responder, b"").der == MALFORMED
    stranger = Question("sha1", b"\x01" * 20, b"\x02" * 20, 5, None)
    assert answer(responder, request_der(stranger)).der == UNAUTHORIZED
    for der, status in ((MALFORMED, "MALFORMED_REQUEST"), (UNAUTHORIZED, "UNAUTHORIZED")):
        assert ocsp.load_der_ocsp_response(der).response_status.name == status


def test_sha256_and_nonce(ca_ctx: Context, tmp_path: Path) -> None:
    """A SHA-256 CertID is answered in kind (signed live); a nonce gets the pre-signed answer
    without it (RFC 5019), or an echo when `ocsp.sign_live_with_nonce` is on."""
    issued = enrol(ca_ctx, "p-nonce")
    ensure_responders(ca_ctx)
    issuing = load_authority(ca_ctx, ISSUING).certificate
    assert issuing is not None
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(issued.certificate, issuing, hashes.SHA256())
        .add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
        .build()
        .public_bytes(Encoding.DER)
    )
    for live in (False, True):
        ctx = Context(
            ca_ctx.config.replace(ocsp={"sign_live_with_nonce": live}),
            ca_ctx.db,
            ca_ctx.clock,
        )
        got = ocsp.load_der_ocsp_response(answer(OcspResponder(ctx), request).der)
        assert got.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert got.hash_algorithm.name == "sha256"
        nonces = [e for e in got.extensions if isinstance(e.value, x509.OCSPNonce)]
        assert bool(nonces) is live


def test_a_revocation_in_this_process_wakes_the_responder(ca_ctx: Context) -> None:
    """The change feed polls once an hour here: only the wake after the commit can flip it."""
    issued = enrol(ca_ctx, "p-wake")
    ctx = Context(ca_ctx.config.replace(ocsp={"poll_seconds": 3600}), ca_ctx.db, ca_ctx.clock)
    responder = OcspResponder(ctx)
    responder.presign()
    runner = JobRunner()
    runner.add("ocsp.changes", 3600, responder.apply_changes, on_wake=True, first_in=0)
    ctx.db.after_commit(runner.wake)
    runner.start()
    try:
        issuing = load_authority(ctx, ISSUING).certificate
        assert issuing is not None
        request = request_der(canonical_question(issuing, issued.certificate.serial_number))
        deadline = time.monotonic() + 10
        while not isinstance(responder.cached(request), Served):  # cached once the feed ran
            answer(responder, request)
            assert time.monotonic() < deadline, "never served from memory"
        revoke(ctx, issued.serial, "keyCompromise")
        while True:
            found = responder.cached(request)  # from memory: "good" until the feed evicts it
            if not isinstance(found, Served):
                found = responder.answer(found)
            status = ocsp.load_der_ocsp_response(found.der).certificate_status
            if status == ocsp.OCSPCertStatus.REVOKED:
                break
            assert time.monotonic() < deadline, "the revocation did not reach the responder"
            time.sleep(0.01)  # waiting on another thread's work, not on time passing
    finally:
        runner.stop()


def test_revoked_responder_is_replaced(ca_ctx: Context) -> None:
    responder = OcspResponder(ca_ctx)
    responder.presign()
    first = load_responders(ca_ctx)[ISSUING].serial
    revoke(ca_ctx, first, "keyCompromise")
    responder.apply_changes()
    assert load_responders(ca_ctx)[ISSUING].serial != first


def test_what_a_relying_party_is_told() -> None:
    """Revoked exactly when the CRL lists it (superseded too); never-signed serials unknown;
    dates do not matter (OCSP speaks of revocation, not validity)."""
    told = {status: revocation_status(status) for status in Status}
    revoked = {s for s, r in told.items() if r is RevocationStatus.REVOKED}
    assert {s.value for s in revoked} == {s.value for s in ON_CRL}
    assert {s for s, r in told.items() if r is RevocationStatus.UNKNOWN} == {
        Status.RESERVED,
        Status.ABANDONED,
    }
    assert told[Status.EXPIRED] is told[Status.PENDING] is RevocationStatus.GOOD


def test_responses_of_expired_certificates_are_dropped(ca_ctx: Context, clock: FixedClock) -> None:
    issued = enrol_filed(ca_ctx, "p-old")
    responder = OcspResponder(ca_ctx)
    responder.presign()
    issuing = load_authority(ca_ctx, ISSUING).certificate
    assert issuing is not None
    path = responder.file_path(canonical_question(issuing, issued.certificate.serial_number))
    assert path.exists()
    clock.current = issued.certificate.not_valid_after_utc - dt.timedelta(hours=1)
    responder.presign()  # the last refresh while it is valid
    clock.advance(dt.timedelta(hours=2))  # expired: its response is not refreshed any more
    responder.presign()
    assert path.exists()  # still within the last response's life
    clock.advance(dt.timedelta(hours=ca_ctx.config.ocsp.response_hours + 1))
    responder.presign()
    assert not path.exists()
