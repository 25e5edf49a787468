"""The portal's own TLS server certificate, issued by our CA, renewed before it runs out.

`certdesk serve` checks it at every start (not only the demo's bootstrap), so a change of
`server.hostnames` or an approaching end date gets a new one without an officer's step. A
certificate that is not valid *now* — not yet valid (a server once run with a clock in the
future, e.g. under libfaketime) or expired — is repaired at start too, with an audit record that
says why (`server_tls.repaired`), so a browser or curl never meets "certificate is not yet valid".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certdesk.services.context import Context
from certdesk.services.enrolment.tls_server import TlsServerEnrolment
from certdesk.services.files import atomic_write
from certdesk.services.issuance import Issuance


def tls_paths(ctx: Context) -> tuple[Path, Path]:
    """(key, certificate chain) under the data directory, where the server reads them."""
    base = ctx.config.data_dir / "tls"
    return base / "server.key", base / "server.crt"


def invalid_now(cert: x509.Certificate, now: dt.datetime) -> str | None:
    """Why a certificate cannot be used at `now` ("not_yet_valid", "expired"), or None."""
    if cert.not_valid_before_utc > now:
        return "not_yet_valid"
    if cert.not_valid_after_utc <= now:
        return "expired"
    return None


def ensure_tls_certificate(ctx: Context, issuance: Issuance | None = None) -> bool:
    """Issue the portal's TLS certificate when missing, for other names, in its last 30 days, or
    when it is not valid now (repaired, audited)."""
    key_path, cert_path = tls_paths(ctx)
    hostnames = [h.strip() for h in ctx.config.server.hostnames.split(",") if h.strip()]
    broken: x509.Certificate | None = None
    reason: str | None = None
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        now = ctx.clock.now()
        reason = invalid_now(cert, now)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
        names |= set(san.get_values_for_type(x509.DNSName))
        fresh = cert.not_valid_after_utc - now > dt.timedelta(days=30)
        if reason is None and fresh and names == set(hostnames):
            return False
        if reason is not None:
            broken = cert
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
    # the chain names the CA that signed it: after a rollover, the new generation
    issuer_pem = issued.issuer_certificate.public_bytes(serialization.Encoding.PEM)
    atomic_write(cert_path, issued.pem + issuer_pem)
    if broken is not None:
        with ctx.db.write() as conn:
            ctx.record(
                conn,
                ctx.clock.now(),
                "server_tls.repaired",
                "certificate",
                issued.serial,
                before={
                    "serial": f"{broken.serial_number:x}",
                    "not_before": broken.not_valid_before_utc.isoformat(),
                    "not_after": broken.not_valid_after_utc.isoformat(),
                    "reason": reason,
                },
                after={
                    "not_before": issued.certificate.not_valid_before_utc.isoformat(),
                    "not_after": issued.certificate.not_valid_after_utc.isoformat(),
                },
            )
    return True
