"""Looking certificates up for officers and scripts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState
from certdesk.services.context import Context
from certdesk.services.serials import normalise_serial, resolve_serial
from certdesk.store import certificates as cert_store
from certdesk.store.db import AnyRow


@dataclass(frozen=True)
class CertificateRecord:
    serial: str
    profile: str
    state: CertState
    person_id: str | None
    token_serial: str | None
    subject: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    fingerprint: str | None
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    der: bytes | None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "der"}
        out["state"] = self.state.value
        for key in ("not_before", "not_after", "revoked_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def _record(row: AnyRow) -> CertificateRecord:
    r = row._mapping
    return CertificateRecord(
        r["serial"],
        r["profile"],
        CertState(r["state"]),
        r["person_id"],
        r["token_serial"],
        r["subject"],
        r["not_before"],
        r["not_after"],
        r["fingerprint"],
        r["revoked_at"],
        r["revocation_reason"],
        r["der"],
    )


def list_certificates(
    ctx: Context,
    person_id: str | None = None,
    state: str | None = None,
    limit: int = 1000,
    search: str | None = None,
    offset: int = 0,
) -> list[CertificateRecord]:
    """Newest first; `search` matches a serial prefix, a person id or part of the subject."""
    wanted = None
    if state:
        try:
            wanted = CertState(state)
        except ValueError:
            raise CertdeskError("input.invalid", detail=f"unknown state {state!r}") from None
    with ctx.db.read() as conn:
        rows = cert_store.search(conn, person_id, wanted, search, limit, max(0, offset))
    return [_record(row) for row in rows]


def get_certificate(ctx: Context, serial: str, *, prefix: bool = False) -> CertificateRecord:
    """The certificate with this serial; with `prefix`, also a unique prefix of one (CLI)."""
    with ctx.db.read() as conn:
        hexserial = resolve_serial(conn, serial) if prefix else normalise_serial(serial)
        row = cert_store.get(conn, hexserial)
    if row is None:
        raise CertdeskError("cert.not_found", serial=hexserial)
    return _record(row)
