"""The OCSP tables: delegated responders and pre-signed responses, and the certificate rows the
responder judges them against."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from certdesk.store.db import AnyRow, rows_in
from certdesk.store.tables import certificates, ocsp_responders, ocsp_responses

_BATCH = 5_000

# What the responder needs of a certificate to know its status.
_STATUS_COLUMNS = (
    certificates.c.serial,
    certificates.c.issuer,
    certificates.c.state,
    certificates.c.not_before,
    certificates.c.not_after,
    certificates.c.revoked_at,
    certificates.c.revocation_reason,
)


def insert_responder(conn: Connection, values: Mapping[str, object]) -> None:
    conn.execute(insert(ocsp_responders).values(**values))


def adopt_key(conn: Connection, serial: str, pem: bytes) -> None:
    """Keep a responder's encrypted key (read from its pre-0019 file) in its row."""
    conn.execute(
        update(ocsp_responders)
        .where(and_(ocsp_responders.c.serial == serial, ocsp_responders.c.key_pem.is_(None)))
        .values(key_pem=pem)
    )


def responders(conn: Connection) -> list[AnyRow]:
    """Every responder certificate, newest last per issuer."""
    query = select(ocsp_responders).order_by(ocsp_responders.c.issuer, ocsp_responders.c.not_after)
    return list(conn.execute(query))


def certificate_and_response(
    conn: Connection, issuer: str, serial: str
) -> tuple[AnyRow | None, AnyRow | None]:
    """The certificate's status columns (None: no such serial of `issuer`) and its stored
    response (None: not signed yet)."""
    cert = conn.execute(
        select(*_STATUS_COLUMNS).where(
            and_(certificates.c.serial == serial, certificates.c.issuer == issuer)
        )
    ).first()
    stored = conn.execute(
        select(
            ocsp_responses.c.status,
            ocsp_responses.c.revoked_at,
            ocsp_responses.c.der,
            ocsp_responses.c.this_update,
            ocsp_responses.c.next_update,
            ocsp_responses.c.responder,
        ).where(and_(ocsp_responses.c.issuer == issuer, ocsp_responses.c.serial == serial))
    ).first()
    return cert, stored


def _with_response() -> Select[Any]:
    """Certificates' status columns with their stored response's status, revocation time,
    nextUpdate and responder (`stored_*`, None when there is none)."""
    return select(
        *_STATUS_COLUMNS,
        ocsp_responses.c.status.label("stored_status"),
        ocsp_responses.c.revoked_at.label("stored_revoked_at"),
        ocsp_responses.c.next_update.label("stored_next_update"),
        ocsp_responses.c.responder.label("stored_responder"),
    ).select_from(
        certificates.outerjoin(
            ocsp_responses,
            and_(
                ocsp_responses.c.issuer == certificates.c.issuer,
                ocsp_responses.c.serial == certificates.c.serial,
            ),
        )
    )


# built once: the change feed runs it after every commit that changed a certificate
_BY_SERIALS = _with_response().where(
    certificates.c.serial.in_(bindparam("serials", expanding=True))
)


def certificates_by_serial(conn: Connection, serials: Sequence[str]) -> list[AnyRow]:
    """The given serials (those that exist) as `signed_with_response` gives them."""
    return list(rows_in(conn, _BY_SERIALS, "serials", serials))


def signed_with_response(conn: Connection, issuer: str, now: dt.datetime) -> Iterator[list[AnyRow]]:
    """`issuer`'s signed, unexpired certificates with their stored response (`_with_response`),
    in batches by serial (keyset: memory stays flat)."""
    query = _with_response().where(
        and_(
            certificates.c.issuer == issuer,
            certificates.c.der.is_not(None),
            certificates.c.not_after >= now,
        )
    )
    return _by_serial(conn, query, certificates.c.serial)


def stored_versions(conn: Connection, issuer: str) -> Iterator[list[AnyRow]]:
    """`issuer`'s stored responses as their files are checked against them: serial, thisUpdate
    and size (`size`), no DER; in batches by serial."""
    query = select(
        ocsp_responses.c.serial,
        ocsp_responses.c.this_update,
        func.length(ocsp_responses.c.der).label("size"),
    ).where(ocsp_responses.c.issuer == issuer)
    return _by_serial(conn, query, ocsp_responses.c.serial)


def _by_serial(conn: Connection, query: Select[Any], serial: Any) -> Iterator[list[AnyRow]]:
    """The rows of `query` in batches of `_BATCH`, ordered by its `serial` column (keyset)."""
    after = ""
    while True:
        rows = list(conn.execute(query.where(serial > after).order_by(serial).limit(_BATCH)))
        if not rows:
            return
        yield rows
        after = rows[-1].serial


_RESPONSES = select(
    ocsp_responses.c.serial, ocsp_responses.c.der, ocsp_responses.c.this_update
).where(
    and_(
        ocsp_responses.c.issuer == bindparam("issuer"),
        ocsp_responses.c.serial.in_(bindparam("serials", expanding=True)),
    )
)


def responses_of(conn: Connection, issuer: str, serials: Sequence[str]) -> list[AnyRow]:
    """The stored responses (serial, DER, thisUpdate) of those of `serials` that have one."""
    return list(rows_in(conn, _RESPONSES.params(issuer=issuer), "serials", serials))


def _upsert(maker: Any) -> Any:
    """Insert, or replace the response already kept for that issuer and serial."""
    statement = maker(ocsp_responses)
    replaced = {
        c: statement.excluded[c]
        for c in ("status", "revoked_at", "der", "this_update", "next_update", "responder")
    }
    return statement.on_conflict_do_update(index_elements=["issuer", "serial"], set_=replaced)


# built once per dialect: the change feed saves responses after every renewal
_UPSERT = {"postgresql": _upsert(pg_insert), "sqlite": _upsert(sqlite_insert)}


def save_responses(conn: Connection, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert or replace pre-signed responses (keyed by issuer and serial)."""
    if rows:
        conn.execute(_UPSERT[conn.dialect.name], list(rows))


def forget_expired(conn: Connection, before: dt.datetime) -> list[tuple[str, str]]:
    """Drop the responses whose nextUpdate is before `before` (their certificates expired, so
    nothing refreshed them); returns their (issuer, serial)."""
    stale = ocsp_responses.c.next_update < before
    gone = [
        (str(i), str(s))
        for i, s in conn.execute(
            select(ocsp_responses.c.issuer, ocsp_responses.c.serial).where(stale)
        )
    ]
    conn.execute(delete(ocsp_responses).where(stale))
    return gone
