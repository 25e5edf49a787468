"""pkilint finds no errors in what certdesk issues; the hook stops a bad profile before signing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.ca.issuer import Authority, CertificateOrder
from certdesk.ca.lint import PkilintHook
from certdesk.ca.profiles import Extensions, Profile, SubjectAltNames
from certdesk.domain.errors import CertdeskError
from certdesk.services.authorities import ISSUING, ROOT, load_authority
from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.enrolment.tls_server import TlsServerEnrolment
from certdesk.services.issuance import Issuance

LINT_PKIX = Path(sys.executable).parent / "lint_pkix_cert"


def lint_cli(cert: x509.Certificate, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The pkilint command line, as an independent check (ERROR and worse fail it)."""
    path = tmp_path / f"{cert.serial_number:x}.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return subprocess.run(
        [str(LINT_PKIX), "lint", "-s", "ERROR", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def linted(ca_ctx: Context) -> Issuance:
    return Issuance(ca_ctx, load_authority(ca_ctx, ISSUING, hooks=(PkilintHook(),)))


def test_issued_certificates_pass_pkilint(linted: Issuance, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    personal = linted.issue(OfficerEnrolment(linted.ctx, "p-001", key.public_key()))
    tls = linted.issue(
        TlsServerEnrolment(linted.ctx.config, key.public_key(), ("127.0.0.1", "portal.fin.example"))
    )
    root = load_authority(linted.ctx, ROOT).certificate
    assert root is not None and linted.authority.certificate is not None
    for cert in (personal.certificate, tls.certificate, root, linted.authority.certificate):
        result = lint_cli(cert, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_hook_stops_a_broken_profile_before_signing(ca_ctx: Context) -> None:
    signed: list[bytes] = []
    authority = load_authority(ca_ctx, ISSUING, hooks=(PkilintHook(),))

    class Recording:
        """Wraps the real signer to see whether the CA key was ever used."""

        key_type = authority.signer.key_type
        public_key = authority.signer.public_key

        def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
            cert = authority.signer.sign_certificate(builder)
            signed.append(cert.public_bytes(Encoding.DER))
            return cert

        def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> object:
            raise AssertionError("not used")

    broken = Authority(Recording(), authority.certificate, authority.urls, authority.hooks)  # type: ignore[arg-type]
    key = ec.generate_private_key(ec.SECP256R1())
    now = ca_ctx.clock.now()
    order = CertificateOrder(
        1,
        x509.Name([]),
        key.public_key(),
        Profile.TLS_SERVER,
        now,
        now,
        Extensions(SubjectAltNames(dns_names=("not a host name",))),  # invalid dNSName
    )
    with pytest.raises(CertdeskError) as err:
        broken.issue(order)
    assert err.value.code == "ca.lint_failed"
    assert signed == []
