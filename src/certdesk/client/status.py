"""What the holder's token shows without a PIN: its certificates, their dates and the renewal
window (the notice's step 1). Shared by `certdesk token list`, `certdesk renew` and the
browser's helper. Only the dates are read here; whether the office still holds the certificate
active is the server's answer after the PIN."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from certdesk.client.server import Server
from certdesk.client.settings import ClientSettings
from certdesk.domain.errors import CertdeskError
from certdesk.domain.renewal import RenewalPolicy
from certdesk.domain.states import CertState
from certdesk.token.device import Device
from certdesk.token.inventory import initial_pin_pending, public_certificates


def name_part(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def token_row(
    device: Device, cert: x509.Certificate | None, now: dt.datetime, window: dt.timedelta
) -> dict[str, Any]:
    """One certificate on one token, as `token list --json` and the helper's `status` give it."""
    row: dict[str, Any] = {
        "label": device.label,
        "token_serial": device.serial,
        "model": device.model,
        "initial_pin": initial_pin_pending(device),
        "holder": "",
        "unit": "",
        "serial": "",
        "not_before": None,
        "not_after": None,
        "days_left": None,
        "window_open": False,
        "renewal": "no certificate",
        "renewal_opens": None,
    }
    if cert is None:
        return row
    decision = RenewalPolicy(window).decide(CertState.ACTIVE, cert.not_valid_after_utc, now)
    if decision.allowed:
        # Only the dates are known here: whether the office revoked the certificate needs the
        # server and the PIN, so this does not promise that renewal will be accepted.
        renewal = f"window open since {decision.opens_at:%Y-%m-%d} (state checked at renew)"
    elif now > cert.not_valid_after_utc:
        renewal = "expired: contact the office"
    else:
        renewal = f"opens {decision.opens_at:%Y-%m-%d}"
    row.update(
        holder=name_part(cert, NameOID.COMMON_NAME),
        unit=name_part(cert, NameOID.ORGANIZATIONAL_UNIT_NAME),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        days_left=(cert.not_valid_after_utc - now).days,
        window_open=decision.allowed,
        renewal=renewal,
        renewal_opens=decision.opens_at.isoformat(),
    )
    return row


def server_window(settings: ClientSettings) -> dt.timedelta:
    """The renewal window's length as the pinned server gives it (`/healthz`)."""
    with Server(settings) as server:
        days = server.health().get("renewal_window_days", settings.renewal_window_days)
    return dt.timedelta(days=int(days))


def refuse_too_early(settings: ClientSettings, device: Device) -> None:
    """Refuse before the PIN when every certificate on the token is before its window.

    The certificates are public objects (read without the PIN); the window's length is the
    server's (`/healthz`, over the pinned TLS). Anything else (revoked, expired, pending) is
    left to the server's answer after the PIN, as before.
    """
    certs = public_certificates(device)
    if not certs:
        return
    window = server_window(settings)
    policy = RenewalPolicy(window)
    now = dt.datetime.now(dt.UTC)
    decisions = [
        (policy.decide(CertState.ACTIVE, c.certificate.not_valid_after_utc, now), c) for c in certs
    ]
    if any(d.allowed or now > c.certificate.not_valid_after_utc for d, c in decisions):
        return
    decision, newest = max(decisions, key=lambda dc: dc[1].certificate.not_valid_after_utc)
    raise CertdeskError(
        "renewal.too_early",
        days=window.days,
        not_after=f"{newest.certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        opens_at=f"{decision.opens_at:%Y-%m-%d %H:%M} UTC",
    )
