"""The portal's own TLS server certificate, issued by our CA, renewed before it runs out.

`certdesk serve` checks it at every start (not only the demo's bootstrap), so a change of
`server.hostnames` or an approaching end date gets a new one without an officer's step.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certdesk.services.authorities import ISSUING, get_authority
from certdesk.services.context import Context
from certdesk.services.enrolment.tls_server import TlsServerEnrolment
from certdesk.services.files import atomic_write
from certdesk.services.issuance import Issuance


def tls_paths(ctx: Context) -> tuple[Path, Path]:
    """(key, certificate chain) under the data directory, where the server reads them."""
    base = ctx.config.data_dir / "tls"
    return base / "server.key", base / "server.crt"


def ensure_tls_certificate(ctx: Context, issuance: Issuance | None = None) -> bool:
    """Issue the portal's TLS certificate when missing, for other names, or in its last 30 days."""
    key_path, cert_path = tls_paths(ctx)
    hostnames = [h.strip() for h in ctx.config.server.hostnames.split(",") if h.strip()]
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
        names |= set(san.get_values_for_type(x509.DNSName))
        fresh = cert.not_valid_after_utc - ctx.clock.now() > dt.timedelta(days=30)
        if fresh and names == set(hostnames):
            return False
    key = ec.generate_private_key(ec.SECP256R1())
    request = TlsServerEnrolment(ctx.config, key.public_key(), tuple(hostnames))
    issued = (issuance or Issuance(ctx)).issue(request)
    atomic_write(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    with ctx.db.read() as conn:
        info = get_authority(conn, ISSUING)
    assert info is not None
    atomic_write(cert_path, issued.pem + info.certificate.public_bytes(serialization.Encoding.PEM))
    return True
