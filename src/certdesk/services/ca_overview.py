"""What the CA administrator's page shows: every CA, its key's storage and its latest CRL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from certdesk.services.authorities import list_authorities
from certdesk.services.context import Context
from certdesk.store import crls as crl_store


@dataclass(frozen=True)
class AuthoritySummary:
    name: str
    subject: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str
    key_storage: str  # "file" | "pkcs11"
    crl_number: int
    crl_this_update: dt.datetime | None
    crl_next_update: dt.datetime | None


def ca_overview(ctx: Context) -> list[AuthoritySummary]:
    out = []
    with ctx.db.read() as conn:
        for info in list_authorities(conn):
            name = info.name
            last = crl_store.latest(conn, name)
            cert = info.certificate
            out.append(
                AuthoritySummary(
                    name,
                    info.subject,
                    format(cert.serial_number, "x"),
                    cert.not_valid_before_utc,
                    cert.not_valid_after_utc,
                    info.key_type,
                    "pkcs11" if info.key_ref.startswith("pkcs11:") else "file",
                    info.crl_number,
                    last.this_update if last else None,
                    last.next_update if last else None,
                )
            )
    return out
