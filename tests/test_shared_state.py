"""Two "machines" — two contexts with their own data directories — on one database: what one
publishes (an OCSP responder and its key, a CRL) the other serves, with nothing shared on disk;
the OCSP change feed signs a new certificate's response once (the jobs lease holder) and a
revocation's everywhere at once. The whole-process version with nginx is tests/test_scale_out.py."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from sqlalchemy import update

from certdesk.ca.keys import write_encrypted_key
from certdesk.ca.ocsp import canonical_question, request_der
from certdesk.domain.clock import FixedClock
from certdesk.domain.errors import CertdeskError
from certdesk.services.authorities import ISSUING, load_authority, passphrase
from certdesk.services.context import Context
from certdesk.services.crl_publish import publish_crl
from certdesk.services.issuance import IssuedCertificate
from certdesk.services.jobs import JobRunner, jobs_lease
from certdesk.services.ocsp import OcspResponder, Served, add_ocsp_jobs
from certdesk.services.ocsp_responders import ensure_responders, load_responders
from certdesk.services.pki_files import download, downloads
from certdesk.services.revocation import revoke
from certdesk.store import ocsp as ocsp_store
from certdesk.store.db import Database
from certdesk.store.tables import crls, ocsp_responders
from test_ocsp import enrol, enrol_filed, openssl_status


@pytest.fixture
def machine_b(ca_ctx: Context, tmp_path: Path) -> Iterator[Context]:
    """Another machine: same database, same configuration, its own data directory."""
    config = ca_ctx.config.replace(paths={"data_dir": str(tmp_path / "machine-b")})
    db = Database(config.database_url)
    yield Context(config, db, ca_ctx.clock, actor="machine-b")
    db.dispose()


def signer_serial(der: bytes) -> int:
    response = ocsp.load_der_ocsp_response(der)
    return response.certificates[0].serial_number


def test_responder_issued_on_a_answers_on_b(
    ca_ctx: Context, machine_b: Context, clock: FixedClock, tmp_path: Path
) -> None:
    holder = enrol(ca_ctx, "p-b1")
    ensure_responders(ca_ctx)  # the jobs holder, machine A
    first = load_responders(ca_ctx)[ISSUING].serial
    answering = OcspResponder(machine_b)  # starts with the responder A issued
    issuing = load_authority(ca_ctx, ISSUING).certificate
    assert issuing is not None
    question = canonical_question(issuing, holder.certificate.serial_number)
    der = answering.answer(question).der
    assert "good" in openssl_status(machine_b, tmp_path, der, holder.certificate.serial_number)
    assert signer_serial(der) == int(first, 16)

    # A renews the responder at half its life and revokes the holder; B notices both
    clock.advance(dt.timedelta(days=ca_ctx.config.ocsp.responder_days / 2, minutes=1))
    assert ensure_responders(ca_ctx)
    revoke(ca_ctx, holder.serial, "keyCompromise")
    second = load_responders(ca_ctx)[ISSUING].serial
    assert second != first
    answering.apply_changes()
    der = answering.answer(question).der
    assert signer_serial(der) == int(second, 16)
    said = openssl_status(machine_b, tmp_path, der, holder.certificate.serial_number)
    assert "revoked" in said and "Reason: keyCompromise" in said
    # no responder key on either machine's disk
    for ctx in (ca_ctx, machine_b):
        assert not (ctx.config.data_dir / "ocsp").exists()


def test_file_key_of_an_older_installation_is_adopted(ca_ctx: Context, machine_b: Context) -> None:
    ensure_responders(ca_ctx)
    responder = load_responders(ca_ctx)[ISSUING]
    path = ca_ctx.config.data_dir / "ocsp" / f"{ISSUING}-{responder.serial}.key"
    write_encrypted_key(responder.key.key, path, passphrase(ca_ctx))

    def as_before_0019() -> None:
        with ca_ctx.db.write() as conn:
            conn.execute(
                update(ocsp_responders)
                .where(ocsp_responders.c.serial == responder.serial)
                .values(key_pem=None, key_ref=str(path))
            )

    as_before_0019()
    assert ensure_responders(ca_ctx) == []  # A, with the file, adopts it at start
    path.unlink()
    assert load_responders(machine_b)[ISSUING].serial == responder.serial  # from the database

    as_before_0019()  # and now the file is gone on every machine
    with pytest.raises(CertdeskError) as refused:
        load_responders(machine_b)
    assert refused.value.code == "ca.key_missing"
    assert len(ensure_responders(machine_b)) == 1  # replaced, not left unusable
    assert load_responders(machine_b)[ISSUING].serial != responder.serial


def test_newest_crl_from_either_machine(ca_ctx: Context, machine_b: Context) -> None:
    holder = enrol(ca_ctx, "p-b2")
    on_a = publish_crl(ca_ctx)
    assert not (machine_b.config.data_dir / "pki" / f"{ISSUING}.crl").exists()
    assert download(machine_b, f"{ISSUING}.crl") == on_a.der_path.read_bytes()
    assert f"{ISSUING}.crl.pem" in downloads(machine_b)
    revoke(machine_b, holder.serial, "superseded")
    on_b = publish_crl(machine_b)  # the lease moved to B
    assert on_b.number > on_a.number
    served = download(ca_ctx, f"{ISSUING}.crl")
    assert served is not None and served != on_a.der_path.read_bytes()  # A's file is stale
    crl = x509.load_der_x509_crl(served)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == on_b.number
    assert crl.get_revoked_certificate_by_serial_number(holder.certificate.serial_number)
    pem = download(ca_ctx, f"{ISSUING}.crl.pem")
    assert pem is not None and x509.load_pem_x509_crl(pem) == crl
    assert (
        download(machine_b, "chain.pem") == (ca_ctx.config.data_dir / "pki/chain.pem").read_bytes()
    )
    assert download(machine_b, "nothing.crl") is None
    with ca_ctx.db.write() as conn:  # CRLs published before 0019: each machine's own file
        conn.execute(update(crls).values(der=None))
    assert download(ca_ctx, f"{ISSUING}.crl") == on_a.der_path.read_bytes()
    assert download(machine_b, f"{ISSUING}.crl") == on_b.der_path.read_bytes()


def stored_status(ctx: Context, issued: IssuedCertificate) -> str | None:
    """The status of the stored (pre-signed) response of `issued` (None: none stored)."""
    with ctx.db.read() as conn:
        _cert, stored = ocsp_store.certificate_and_response(conn, ISSUING, issued.serial)
    return None if stored is None else str(stored.status)


def test_new_certificates_signed_once_revocations_everywhere(
    ca_ctx: Context, machine_b: Context, tmp_path: Path
) -> None:
    """B does not hold the jobs lease: its feed evicts what changed from its memory and re-signs
    a revocation at once (its own file too), but leaves a new certificate to A, which holds the
    lease and signs it once (and not again while its stored response says the same)."""
    old = enrol_filed(ca_ctx, "p-once")
    ensure_responders(ca_ctx)
    on_a = OcspResponder(ca_ctx)
    on_a.presign()
    on_b = OcspResponder(machine_b)
    leader, other = JobRunner(jobs_lease(ca_ctx)), JobRunner(jobs_lease(machine_b))
    try:
        assert leader.lead() and not other.lead()
        issuing = load_authority(ca_ctx, ISSUING).certificate
        assert issuing is not None
        question = canonical_question(issuing, old.certificate.serial_number)
        assert on_b.apply_changes(leading=other.leading) == []  # the feed is read: memory used
        on_b.answer(question, request_der(question))
        assert isinstance(on_b.cached(request_der(question)), Served)

        new = enrol(machine_b, "p-once-new")
        revoke(machine_b, old.serial, "keyCompromise")
        assert on_b.apply_changes(leading=other.leading) == [old.serial]
        assert not isinstance(on_b.cached(request_der(question)), Served)  # evicted
        on_file = on_b.file_path(question).read_bytes()  # B's own file: no stale "good" left
        assert ": revoked" in openssl_status(machine_b, tmp_path, on_file, question.serial)
        assert stored_status(ca_ctx, new) is None  # left to the lease holder
        assert stored_status(ca_ctx, old) == "revoked"

        # A sees both: signs the new one, and the revocation for its own machine's file
        assert sorted(on_a.apply_changes(leading=leader.leading)) == sorted(
            [new.serial, old.serial]
        )
        assert stored_status(ca_ctx, new) == "good"
        on_file = on_a.file_path(question).read_bytes()
        assert ": revoked" in openssl_status(ca_ctx, tmp_path, on_file, question.serial)
        # a change that leaves it good (a renewal confirmed) signs nothing again
        assert on_a.resign([new.serial]) == []
        assert on_a.resign([old.serial]) == [old.serial]  # not good: always
    finally:
        leader.stop()
        other.stop()


def test_the_feed_of_serve_asks_the_runner_whether_it_leads(
    ca_ctx: Context, machine_b: Context
) -> None:
    """`add_ocsp_jobs` on a runner without the lease: its feed re-signs the revocation and not
    the new certificate."""
    old = enrol(ca_ctx, "p-lead")
    ensure_responders(ca_ctx)
    OcspResponder(ca_ctx).presign()
    on_b = OcspResponder(machine_b)
    leader, other = JobRunner(jobs_lease(ca_ctx)), JobRunner(jobs_lease(machine_b))
    try:
        assert leader.lead()
        new = enrol(machine_b, "p-lead-new")
        revoke(machine_b, old.serial, "keyCompromise")
        ran = threading.Event()
        add_ocsp_jobs(other, on_b)
        other.add("done", 3600, ran.set)  # after the feed's first run, on the same thread
        other.start()
        assert ran.wait(30)
        assert not other.leading
        assert stored_status(ca_ctx, old) == "revoked"
        assert stored_status(ca_ctx, new) is None
    finally:
        leader.stop()
        other.stop()
