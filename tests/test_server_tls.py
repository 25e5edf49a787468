"""The portal's TLS certificate: issued once, kept while fresh, reissued for new names or end."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from cryptography import x509

from certdesk.domain.clock import FixedClock
from certdesk.services.context import Context
from certdesk.services.server_tls import ensure_tls_certificate, tls_paths
from certdesk.store import audit
from certdesk.store.audit import AuditRecord


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


def _repairs(ctx: Context) -> list[AuditRecord]:
    with ctx.db.read() as conn:
        return audit.newest_first(conn, None, 10, action="server_tls.repaired")


def test_not_valid_now_is_repaired_at_start_and_audited(ca_ctx: Context, clock: FixedClock) -> None:
    """A server once started with its clock 340 days ahead (the README's libfaketime demo) left a
    certificate whose notBefore is in the future; the next start at the real date repairs it."""
    today = clock.now()
    clock.advance(dt.timedelta(days=340))
    assert ensure_tls_certificate(ca_ctx)
    future = x509.load_pem_x509_certificates(tls_paths(ca_ctx)[1].read_bytes())[0]
    assert future.not_valid_before_utc > today
    assert not _repairs(ca_ctx)

    back = dataclasses.replace(ca_ctx, clock=FixedClock(today))
    assert ensure_tls_certificate(back)
    repaired = x509.load_pem_x509_certificates(tls_paths(back)[1].read_bytes())[0]
    assert repaired.not_valid_before_utc <= today < repaired.not_valid_after_utc
    (record,) = _repairs(back)
    assert json.loads(record.before or "{}")["reason"] == "not_yet_valid"
    assert json.loads(record.before or "{}")["serial"] == f"{future.serial_number:x}"
    assert record.object_id == f"{repaired.serial_number:x}"
    assert not ensure_tls_certificate(back)  # valid now: kept, nothing more recorded
    assert len(_repairs(back)) == 1

    later = dataclasses.replace(
        ca_ctx, clock=FixedClock(repaired.not_valid_after_utc + dt.timedelta(days=1))
    )
    assert ensure_tls_certificate(later)
    assert json.loads(_repairs(later)[0].before or "{}")["reason"] == "expired"
