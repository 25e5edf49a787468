"""Issuers as a set: a second issuing generation takes over issuing while what the first signed
still logs in and renews (found by its AKI), and each issuer has its own CRL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient

from certdesk.domain.clock import FixedClock
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import AuthorityState
from certdesk.services import registry
from certdesk.services.access import Access, Principal
from certdesk.services.authorities import list_authorities, pki_dir
from certdesk.services.ca_hierarchy import add_issuing_generation
from certdesk.services.certificates import get_certificate
from certdesk.services.crl_publish import publish_crl
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.renewal import Renewals
from certdesk.web.app import create_app
from conftest import openssl_verify
from test_renewal import Holder


def test_a_new_generation_issues_and_the_old_one_stays_trusted(
    issuance: Issuance, tmp_path: Path
) -> None:
    ctx = issuance.ctx
    old_key = ec.generate_private_key(ec.SECP256R1())
    old = issuance.issue(OfficerEnrolment(ctx, "p-001", old_key.public_key()))
    access, renewals = Access(ctx), Renewals(ctx, issuance)  # loaded before the new generation

    g2 = add_issuing_generation(ctx)
    assert (g2.name, g2.generation, g2.state) == ("issuing-2", 2, AuthorityState.ACTIVE)
    with ctx.db.read() as conn:
        states = {a.name: a.state for a in list_authorities(conn)}
    assert states == {
        "root": AuthorityState.ACTIVE,
        "issuing": AuthorityState.RETIRING,
        "issuing-2": AuthorityState.ACTIVE,
    }

    # the running process's issuance now signs with generation 2
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    new = issuance.issue(
        OfficerEnrolment(ctx, "p-002", ec.generate_private_key(ec.SECP256R1()).public_key())
    )
    assert new.issuer == "issuing-2" and new.issuer_certificate == g2.certificate
    new.certificate.verify_directly_issued_by(g2.certificate)
    assert get_certificate(ctx, new.serial).serial == new.serial
    leaf = tmp_path / "new.pem"
    leaf.write_bytes(new.pem)
    pki = pki_dir(ctx)
    checked = openssl_verify(pki, leaf, ctx.clock.now(), "-untrusted", pki / "issuing-2.pem")
    assert checked.returncode == 0, checked.stderr
    expected_crl = f"{ctx.config.base_url}/pki/issuing-2.crl"
    points = new.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert points.value[0].full_name[0].value == expected_crl  # type: ignore[index]

    # both log in: the old one by its retiring issuer, the new one after a reload
    for issued in (old, new):
        who = access.identify(issued.der)
        assert isinstance(who, Principal), who
        assert who.serial == issued.serial

    # the old holder renews under the new generation
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.advance(dt.timedelta(days=340))
    holder = Holder(renewals, old_key, old.serial)
    renewed = holder.renew(ec.generate_private_key(ec.SECP256R1()))
    assert renewed.issuer == "issuing-2"
    assert renewals.issuer_certificate(renewed) == g2.certificate

    # one CRL per issuer; an unknown one is refused before anything is numbered
    assert publish_crl(ctx, "issuing").issuer == "issuing"
    published = publish_crl(ctx, "issuing-2")
    assert published.crl.issuer == g2.certificate.subject
    assert (pki / "issuing-2.crl").read_bytes() == published.crl.public_bytes(Encoding.DER)
    with pytest.raises(CertdeskError) as err:
        publish_crl(ctx, "issuing-9")
    assert err.value.code == "input.invalid" and "issuing-9" in err.value.message("en")


def test_a_certificate_of_a_ca_we_do_not_run_is_not_ours(issuance: Issuance) -> None:
    ctx = issuance.ctx
    other = Issuance(ctx)  # same database: its CA is ours; a stranger's is made by hand below
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Somebody else's CA")])
    now = ctx.clock.now()
    forged = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(other.authority.certificate.subject)  # type: ignore[union-attr]
        .public_key(stranger_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(stranger_key.public_key()),
            critical=False,
        )
        .sign(stranger_key, hashes.SHA256())
    )
    access = Access(ctx)
    refusal = access.identify(forged.public_bytes(Encoding.DER))
    assert not isinstance(refusal, Principal)
    assert refusal.problem.value == "login.not_ours"
    # the same stranger again within the minute does not reload the set (a generation added
    # meanwhile stays unseen until a certificate of its own asks for it)
    add_issuing_generation(ctx)
    assert access.identify(forged.public_bytes(Encoding.DER)) == refusal
    assert "issuing-2" not in access.issuers.by_name


def test_every_issuers_files_are_served_where_its_certificates_point(issuance: Issuance) -> None:
    """A generation-2 certificate's CRL and caIssuers URLs name /pki/issuing-2.*: served."""
    ctx = issuance.ctx
    g2 = add_issuing_generation(ctx)
    publish_crl(ctx, "issuing-2")
    client = TestClient(create_app(ctx))
    for name, media in [
        ("issuing-2.crl", "application/pkix-crl"),
        ("issuing-2.crt", "application/pkix-cert"),
        ("issuing-2.pem", "application/x-pem-file"),
        ("issuing.crt", "application/pkix-cert"),
    ]:
        answer = client.get(f"/pki/{name}")
        assert answer.status_code == 200, (name, answer.text)
        assert answer.headers["content-type"].startswith(media)
        assert answer.content == (pki_dir(ctx) / name).read_bytes()
    crl = x509.load_der_x509_crl(client.get("/pki/issuing-2.crl").content)
    assert crl.is_signature_valid(g2.certificate.public_key())  # type: ignore[arg-type]
    refused = client.get("/pki/issuing-9.crl")
    assert refused.status_code == 400 and refused.json()["code"] == "input.invalid"
