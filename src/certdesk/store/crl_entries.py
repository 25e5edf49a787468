"""Streaming the revoked (or superseded), not yet expired certificates of a CA for its CRL, all
of them (a complete CRL) or those that went on it since a time (a delta CRL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from sqlalchemy import ColumnElement, Connection, and_, func, select

from certdesk.domain.lifecycle import ON_CRL
from certdesk.domain.revocation import RevokedEntry
from certdesk.domain.states import RevocationReason
from certdesk.store.db import in_sql
from certdesk.store.tables import certificates

_BATCH = 20_000
# domain/lifecycle.py ON_CRL: a superseded certificate is listed with reason superseded.
_ON_CRL = [state.value for state in ON_CRL]


def on_crl(issuer: str, now: dt.datetime, since: dt.datetime | None = None) -> ColumnElement[bool]:
    """Which certificates `issuer`'s CRL at `now` lists (with `since`: those that went on it at
    or after `since`): the one definition, so what is counted (the CRL's record and audit) and
    what is listed cannot disagree."""
    revoked_at = certificates.c.revoked_at
    went_on = revoked_at.is_not(None) if since is None else revoked_at >= since
    return and_(
        certificates.c.issuer == issuer,
        certificates.c.state.in_([in_sql(s) for s in _ON_CRL]),
        went_on,
        certificates.c.not_after >= now,
    )


def count_on_crl(
    conn: Connection, issuer: str, now: dt.datetime, since: dt.datetime | None = None
) -> int:
    """How many entries `iter_revoked` yields for the same arguments (same snapshot)."""
    return int(conn.execute(select(func.count()).where(on_crl(issuer, now, since))).scalar_one())


def any_on_crl_after(conn: Connection, issuer: str, now: dt.datetime, after: dt.datetime) -> bool:
    """Whether a certificate went on `issuer`'s CRL after `after` (one index probe)."""
    went_on = and_(on_crl(issuer, now), certificates.c.revoked_at > after)
    query = select(certificates.c.serial).where(went_on).limit(1)
    return conn.execute(query).first() is not None


def iter_revoked(
    conn: Connection, issuer: str, now: dt.datetime, since: dt.datetime | None = None
) -> Iterator[RevokedEntry]:
    """Rows are streamed in batches (server-side cursor on PostgreSQL), so memory stays flat."""
    query = (
        select(certificates.c.serial, certificates.c.revoked_at, certificates.c.revocation_reason)
        .where(on_crl(issuer, now, since))
        .execution_options(stream_results=True, yield_per=_BATCH)
    )
    reasons = {r.value: r for r in RevocationReason}
    for serial, revoked_at, reason in conn.execute(query):
        yield RevokedEntry(int(serial, 16), revoked_at, reasons[reason or "unspecified"])
