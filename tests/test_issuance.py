"""Officer enrolment from a CSR, end to end on SQLite and PostgreSQL, checked by openssl."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import event

from certdesk.ca.issuer import CertificateOrder
from certdesk.ca.profiles import Extensions, Profile, SubjectAltNames, profile_extensions
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState
from certdesk.services import registry
from certdesk.services.authorities import pki_dir
from certdesk.services.certificates import get_certificate, list_certificates
from certdesk.services.context import Context
from certdesk.services.enrolment import IssuedCertificate
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.enrolment.tls_server import TlsServerEnrolment
from certdesk.services.group_commit import Pipeline
from certdesk.services.issuance import Issuance, abandon_stale_reservations
from certdesk.services.revocation import revoke
from certdesk.services.tokens import assign_token, register_token
from conftest import openssl, openssl_verify


def make_csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str | None = None) -> bytes:
    """A CSR with an empty subject (the registry names the holder), or only `cn`."""
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(names))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def enrol_csr(
    issuance: Issuance, person_id: str, csr: bytes, token_serial: str | None = None
) -> IssuedCertificate:
    return issuance.issue(OfficerEnrolment.from_csr(issuance.ctx, person_id, csr, token_serial))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_enrol_from_csr_identity_from_registry(issuance: Issuance, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertdeskError) as other:  # a CSR may not ask for another name
        enrol_csr(issuance, "p-001", make_csr(key, cn="Somebody Else"))
    assert other.value.code == "enrolment.identity_change"
    issued = enrol_csr(issuance, "p-001", make_csr(key, cn="Zhang San"))  # may repeat it
    cert = issued.certificate
    subject = {a.oid: a.value for a in cert.subject}
    assert subject[NameOID.COMMON_NAME] == "Zhang San"  # from the registry
    assert subject[NameOID.ORGANIZATIONAL_UNIT_NAME] == "Finance Bureau"
    assert subject[NameOID.SERIAL_NUMBER] == "p-001"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["zhang@fin.example"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION}
    assert cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    # 20 bytes at most, positive
    assert 0 < cert.serial_number < 2**159
    # the notice's validity: from issuance to the same date and time next year
    assert cert.not_valid_before_utc == dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    assert cert.not_valid_after_utc == dt.datetime(2027, 3, 1, 9, 30, tzinfo=dt.UTC)
    record = get_certificate(issuance.ctx, issued.serial)
    assert record.state is CertState.ACTIVE and record.der == issued.der

    leaf = write(tmp_path / "leaf.pem", issued.pem)
    pki = pki_dir(issuance.ctx)
    result = openssl_verify(
        pki, leaf, dt.datetime(2026, 6, 1, tzinfo=dt.UTC), "-purpose", "sslclient"
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr


def test_rsa_ca_and_rsa_holder(tmp_path: Path, db_url: str, clock: object) -> None:
    from certdesk.services.ca_hierarchy import init_hierarchy
    from certdesk.store.db import Database
    from certdesk.store.migrate import upgrade
    from conftest import make_config

    db = Database(db_url)
    upgrade(db)
    ctx = Context(make_config(tmp_path, db_url, key_type="rsa-2048"), db, clock, "test")  # type: ignore[arg-type]
    init_hierarchy(ctx)
    registry.add_unit(ctx, "U", "Unit")
    registry.add_person(ctx, "p", "Wang Wu", "U", "wang@u.example")
    issued = Issuance(ctx).issue(
        OfficerEnrolment.from_csr(ctx, "p", make_csr(rsa.generate_private_key(65537, 2048)))
    )
    leaf = write(tmp_path / "leaf.pem", issued.pem)
    pki = pki_dir(ctx)
    result = openssl_verify(pki, leaf, dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert result.returncode == 0, result.stdout + result.stderr
    db.dispose()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "input.malformed_csr"),
        (
            b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n",
            "input.malformed_csr",
        ),
        (b"\x30\x03\x02\x01\x00", "input.malformed_csr"),
    ],
)
def test_malformed_csr_refused(issuance: Issuance, data: bytes, code: str) -> None:
    with pytest.raises(CertdeskError) as err:
        enrol_csr(issuance, "p-001", data)
    assert err.value.code == code
    assert err.value.message("zh-CN") and err.value.message("en")


def test_csr_with_bad_signature_refused(issuance: Issuance) -> None:
    pem = make_csr(ec.generate_private_key(ec.SECP256R1()))
    csr = x509.load_pem_x509_csr(pem)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # flip a bit inside the signature
    with pytest.raises(CertdeskError) as err:
        enrol_csr(issuance, "p-001", bytes(der))
    assert err.value.code in {"input.csr_bad_signature", "input.malformed_csr"}
    assert get_certs(issuance.ctx) == []


def get_certs(ctx: Context) -> list[str]:
    from certdesk.services.certificates import list_certificates

    return [c.serial for c in list_certificates(ctx, person_id="p-001")]


def test_refusals_change_nothing(issuance: Issuance) -> None:
    ctx = issuance.ctx
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertdeskError) as err:
        enrol_csr(issuance, "nobody", make_csr(key))
    assert err.value.code == "person.not_found"
    first = enrol_csr(issuance, "p-001", make_csr(key))
    with pytest.raises(CertdeskError) as err:
        enrol_csr(issuance, "p-001", make_csr(ec.generate_private_key(ec.SECP256R1())))
    assert err.value.code == "person.has_active_certificate"
    assert first.serial in err.value.message("en")
    # the refused attempt left no reservation behind
    assert get_certs(ctx) == [first.serial]


def test_token_custody_one_keeper(issuance: Issuance) -> None:
    ctx = issuance.ctx
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    register_token(ctx, "TK-1", "SoftHSM")
    assign_token(ctx, "TK-1", "p-002")
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertdeskError) as err:
        enrol_csr(issuance, "p-001", make_csr(key), "TK-1")
    assert err.value.code == "token.issued_to_other"
    assert get_certs(ctx) == []


def test_revoke_and_crl(issuance: Issuance, tmp_path: Path) -> None:
    from certdesk.services.crl_publish import publish_crl

    ctx = issuance.ctx
    issued = enrol_csr(issuance, "p-001", make_csr(ec.generate_private_key(ec.SECP256R1())))
    revoke(ctx, issued.serial, "keyCompromise")
    with pytest.raises(CertdeskError) as err:
        revoke(ctx, issued.serial, "keyCompromise")
    assert err.value.code == "cert.already_revoked"
    with pytest.raises(CertdeskError) as err:
        revoke(ctx, issued.serial, "no-such-reason")
    assert err.value.code == "revocation.bad_reason"
    first = publish_crl(ctx)
    second = publish_crl(ctx)
    assert second.number == first.number + 1
    assert second.crl.get_revoked_certificate_by_serial_number(issued.certificate.serial_number)
    pki = pki_dir(ctx)
    leaf = write(tmp_path / "leaf.pem", issued.pem)
    parsed = openssl("crl", "-in", second.pem_path, "-noout", "-text")
    assert parsed.returncode == 0 and "Key Compromise" in parsed.stdout
    chain = write(
        tmp_path / "all.pem", (pki / "root.pem").read_bytes() + (pki / "issuing.pem").read_bytes()
    )
    when = str(int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp()))  # CRL is current
    result = openssl(
        "verify",
        "-attime",
        when,
        "-crl_check",
        "-CAfile",
        chain,
        "-CRLfile",
        second.pem_path,
        leaf,
    )
    assert result.returncode != 0
    assert "certificate revoked" in (result.stdout + result.stderr)


def test_reservation_closed_while_signing_is_never_recorded(issuance: Issuance) -> None:
    """`abandon_stale_reservations` (another process, after a crash) may close a reservation
    this process is still signing: the signed certificate must then be dropped, not recorded."""
    from certdesk.services.certificates import list_certificates
    from certdesk.services.issuance import abandon_stale_reservations

    sign = issuance.authority.issue

    def sign_while_swept(order):  # type: ignore[no-untyped-def]
        abandon_stale_reservations(issuance.ctx, older_than=dt.timedelta(0))
        return sign(order)

    issuance.authority.issue = sign_while_swept  # type: ignore[method-assign]
    with pytest.raises(CertdeskError) as closed:
        issuance.issue(
            OfficerEnrolment(
                issuance.ctx, "p-001", ec.generate_private_key(ec.SECP256R1()).public_key()
            )
        )
    assert closed.value.code == "issuance.reservation_closed"
    (row,) = list_certificates(issuance.ctx, "p-001")
    assert row.state is CertState.ABANDONED and row.der is None


def test_ca_init_after_a_crash_between_key_files_and_database(ctx: Context) -> None:
    """Key files written, database row not: a second init keeps the old files aside."""
    from certdesk.services.ca_hierarchy import init_hierarchy

    ca_dir = ctx.config.data_dir / "ca"
    ca_dir.mkdir(parents=True)
    (ca_dir / "root.key").write_bytes(b"left by a crashed init")
    init_hierarchy(ctx)
    kept = list(ca_dir.glob("root.key.unused-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"left by a crashed init"
    assert (ca_dir / "root.key").read_bytes() != b"left by a crashed init"


def test_batch_answers_each_request_in_its_place(issuance: Issuance) -> None:
    """A batch reads its officer requests' people in one query: each request still gets its
    own answer, in its place, beside a request of another method in the middle."""
    ctx = issuance.ctx
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    registry.add_person(ctx, "p-003", "Wang Wu", "FIN", "wang@fin.example")
    registry.add_person(ctx, "p-004", "Zhao Liu", "FIN", "zhao@fin.example")
    registry.mark_departed(ctx, "p-004")
    held = enrol_csr(issuance, "p-003", make_csr(ec.generate_private_key(ec.SECP256R1())))

    def officer(person_id: str) -> OfficerEnrolment:
        return OfficerEnrolment(
            ctx, person_id, ec.generate_private_key(ec.SECP256R1()).public_key()
        )

    server_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    outcomes = issuance.issue_batch(
        [
            officer("p-001"),
            officer("nobody"),
            TlsServerEnrolment(ctx.config, server_key, ("portal.fin.example",)),
            officer("p-002"),
            officer("p-003"),
            officer("p-001"),
            officer("p-004"),
        ]
    )
    answers = [
        o.code if isinstance(o, CertdeskError) else (o.profile.value, o.person_id) for o in outcomes
    ]
    assert answers == [
        ("personal", "p-001"),
        "person.not_found",
        ("tls_server", None),
        ("personal", "p-002"),
        "person.has_active_certificate",
        "person.has_active_certificate",
        "person.departed",
    ]
    assert isinstance(outcomes[4], CertdeskError) and held.serial in outcomes[4].message("en")
    first = outcomes[0]
    assert isinstance(first, IssuedCertificate)
    assert isinstance(outcomes[5], CertdeskError) and first.serial in outcomes[5].message("en")
    subject = first.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert subject[0].value == "Zhang San"


def _officer(ctx: Context, person_id: str) -> OfficerEnrolment:
    return OfficerEnrolment(ctx, person_id, ec.generate_private_key(ec.SECP256R1()).public_key())


def _commits(ctx: Context) -> list[int]:
    """A live count of the transactions committed on `ctx`'s database."""
    count = [0]
    event.listen(ctx.db.engine, "commit", lambda _conn: count.__setitem__(0, count[0] + 1))
    return count


def _state(ctx: Context, person_id: str) -> list[CertState]:
    return [row.state for row in list_certificates(ctx, person_id)]


def test_a_batch_is_recorded_in_the_next_batchs_reservation(issuance: Issuance) -> None:
    """`advance`: the batch signed last is recorded in the transaction that reserves the next
    one (one commit, not two; on PostgreSQL two, see `Issuance.advance`); each certificate is
    signed only after its reservation has committed and answered only after its record has."""
    ctx = issuance.ctx
    joined = 1 if ctx.db.is_sqlite else 2  # commits of a record with the next reservation
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    commits = _commits(ctx)  # (reading the states below commits read transactions too)
    done, first = issuance.advance(None, [_officer(ctx, "p-001")])
    assert done == [] and commits[0] == 1
    first = issuance.sign(first)
    assert _state(ctx, "p-001") == [CertState.RESERVED]
    assert len(first.signed) == 1  # signed, not yet answered
    before = commits[0]
    done, second = issuance.advance(first, [_officer(ctx, "p-002")])
    assert commits[0] == before + joined
    (issued,) = done
    assert isinstance(issued, IssuedCertificate) and issued.person_id == "p-001"
    assert _state(ctx, "p-001") == [CertState.ACTIVE]
    assert _state(ctx, "p-002") == [CertState.RESERVED]
    before = commits[0]
    done, _ = issuance.advance(issuance.sign(second), [])
    assert commits[0] == before + 1
    (issued,) = done
    assert isinstance(issued, IssuedCertificate) and issued.person_id == "p-002"
    assert _state(ctx, "p-002") == [CertState.ACTIVE]


def test_a_refused_record_does_not_cost_the_next_batch(issuance: Issuance) -> None:
    """When the shared transaction is refused (here the signed batch's reservation was closed
    by another process meanwhile), the record is retried alone — which names the refused one —
    and the next batch is reserved on its own."""
    ctx = issuance.ctx
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    _, first = issuance.advance(None, [_officer(ctx, "p-001")])
    first = issuance.sign(first)
    assert abandon_stale_reservations(ctx, older_than=dt.timedelta(0))
    done, second = issuance.advance(first, [_officer(ctx, "p-002")])
    (refused,) = done
    assert isinstance(refused, CertdeskError) and refused.code == "issuance.reservation_closed"
    assert _state(ctx, "p-001") == [CertState.ABANDONED]
    done, _ = issuance.advance(issuance.sign(second), [])
    (issued,) = done
    assert isinstance(issued, IssuedCertificate) and issued.person_id == "p-002"
    assert _state(ctx, "p-002") == [CertState.ACTIVE]


def test_pipeline_shares_a_commit_between_batches(issuance: Issuance) -> None:
    """The server's issuing committer: requests that arrive while a batch is being signed are
    reserved in that batch's record transaction — three certificates in two batches cost three
    commits, not four (on SQLite; four on PostgreSQL); the first batch is answered before the
    second is signed; a request alone is answered without waiting for another."""
    ctx = issuance.ctx
    extra = 0 if ctx.db.is_sqlite else 1  # PostgreSQL: the record and the reservation apart
    for person_id, name in (("p-002", "Li Si"), ("p-003", "Wang Wu"), ("p-004", "Zhao Liu")):
        registry.add_person(ctx, person_id, name, "FIN", f"{person_id}@fin.example")
    # the first signature of each of the first two batches waits for its release
    held = [(threading.Event(), threading.Event()) for _ in range(2)]
    sign = issuance.authority.issue

    def gated(order: CertificateOrder) -> x509.Certificate:
        for signing, release in held:
            if not signing.is_set():
                signing.set()
                assert release.wait(30)
                break
        return sign(order)

    issuance.authority.issue = gated  # type: ignore[method-assign]
    commits = _commits(ctx)
    pipeline = Pipeline(issuance.advance, issuance.sign)
    try:
        first = pipeline.submit(_officer(ctx, "p-001"))
        assert held[0][0].wait(30)
        later = [pipeline.submit(_officer(ctx, p)) for p in ("p-002", "p-003")]
        held[0][1].set()
        assert held[1][0].wait(30)  # the second batch is being signed…
        assert first.result(30).person_id == "p-001"  # …and the first is answered
        assert commits[0] == 2 + extra and not any(f.done() for f in later)
        held[1][1].set()
        results = [f.result(30) for f in later]
        assert commits[0] == 3 + extra
        alone = pipeline.run(_officer(ctx, "p-004"), timeout=30)
        assert commits[0] == 5 + extra
    finally:
        for _, release in held:
            release.set()
        pipeline.close()
    assert [r.person_id for r in results] == ["p-002", "p-003"]
    assert len({r.serial for r in (first.result(), *results, alone)}) == 4
    assert all(_state(ctx, p) == [CertState.ACTIVE] for p in ("p-001", "p-002", "p-003", "p-004"))


def test_pipeline_closed_with_a_batch_in_flight_answers_it(issuance: Issuance) -> None:
    """Closing the committer (server shutdown) right after a request was handed in: the batch
    in flight is still recorded and answered, not left reserved."""
    pipeline = Pipeline(issuance.advance, issuance.sign)
    future = pipeline.submit(_officer(issuance.ctx, "p-001"))
    pipeline.close()
    assert future.done()
    assert future.result().person_id == "p-001"
    assert _state(issuance.ctx, "p-001") == [CertState.ACTIVE]


@pytest.mark.parametrize("profile", list(Profile))
def test_extensions_encoded_once_are_the_typed_encoders_bytes(
    issuance: Issuance, profile: Profile
) -> None:
    """The fixed extensions go to the builder already encoded (`profiles._encoded`): the
    to-be-signed bytes are exactly those the same extensions, typed, give."""
    authority = issuance.authority
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    order = CertificateOrder(
        x509.random_serial_number(),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p-001")]),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        profile,
        now,
        now + dt.timedelta(days=365),
        Extensions(SubjectAltNames(emails=("zhang@fin.example",))),
    )
    extensions = profile_extensions(
        profile,
        subject_key=order.public_key,
        issuer_key_id=authority.issuer_key_id,
        urls=authority.urls,
        extensions=order.extensions,
    )
    encoded = [e for e in extensions if isinstance(e.value, x509.UnrecognizedExtension)]
    assert len(encoded) >= 2  # basic constraints and key usage at least
    signed = authority.signer.sign_certificate(authority.build(order))
    typed = list(signed.extensions)  # parsed back: the typed values
    assert not any(isinstance(e.value, x509.UnrecognizedExtension) for e in typed)
    again = x509.CertificateBuilder(
        signed.issuer,
        signed.subject,
        signed.public_key(),
        signed.serial_number,
        signed.not_valid_before_utc,
        signed.not_valid_after_utc,
        typed,
    )
    assert authority.signer.sign_certificate(again).tbs_certificate_bytes == (
        signed.tbs_certificate_bytes
    )
