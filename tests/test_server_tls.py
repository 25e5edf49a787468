"""The portal's TLS certificate: issued once, kept while fresh, reissued for new names or end."""

from __future__ import annotations

import dataclasses
import datetime as dt

from cryptography import x509

from certdesk.domain.clock import FixedClock
from certdesk.services.context import Context
from certdesk.services.server_tls import ensure_tls_certificate, tls_paths


def _names(ctx: Context) -> set[str]:
    cert = x509.load_pem_x509_certificates(tls_paths(ctx)[1].read_bytes())[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )


def test_issued_when_missing_kept_while_fresh_reissued_for_names_and_end(
    ca_ctx: Context, clock: FixedClock
) -> None:
    assert ensure_tls_certificate(ca_ctx)
    key_path, cert_path = tls_paths(ca_ctx)
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert len(x509.load_pem_x509_certificates(cert_path.read_bytes())) == 2  # with its issuer
    assert _names(ca_ctx) == {"127.0.0.1"}
    assert not ensure_tls_certificate(ca_ctx)

    renamed = dataclasses.replace(
        ca_ctx, config=ca_ctx.config.replace(server={"hostnames": "127.0.0.1, portal.example"})
    )
    assert ensure_tls_certificate(renamed)
    assert _names(renamed) == {"127.0.0.1", "portal.example"}

    clock.advance(dt.timedelta(days=340))  # within the last 30 days of the year
    assert ensure_tls_certificate(renamed)
    assert not ensure_tls_certificate(renamed)
