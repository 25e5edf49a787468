"""What the CA administrator's page shows: every CA with its generation and state, its key's
storage, its latest CRL and, for an issuing CA, how many of its certificates are still valid."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from certdesk.domain.states import AuthorityState
from certdesk.services.authorities import ISSUING, list_authorities
from certdesk.services.context import Context
from certdesk.services.rollover import generation_load
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
    role: str
    generation: int
    state: AuthorityState
    valid_certificates: int | None  # issuing CAs only
    last_valid_until: dt.datetime | None


def ca_overview(ctx: Context) -> list[AuthoritySummary]:
    out = []
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        for info in list_authorities(conn):
            name = info.name
            last = crl_store.latest(conn, name)
            cert = info.certificate
            load = generation_load(conn, info, now) if info.role == ISSUING else None
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
                    info.role,
                    info.generation,
                    info.state,
                    load.valid_certificates if load else None,
                    load.last_valid_until if load else None,
                )
            )
    return out
