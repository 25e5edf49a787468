"""The certificates table as the use cases ask it: by what they want to know, not by joins.

State changes are not written here: `store/states.py` does, for `services/lifecycle.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    ScalarSelect,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
)

from certdesk.domain.lifecycle import IN_FLIGHT, MAY_BE_VALID
from certdesk.domain.states import CertState
from certdesk.store.db import AnyRow, Database, FixedRead, execute_many, in_sql, rows_in
from certdesk.store.tables import certificates

PERSONAL = "personal"
_ACTIVE_PERSONAL = select(certificates.c.serial).where(
    and_(
        certificates.c.profile == in_sql(PERSONAL),
        certificates.c.state == in_sql(CertState.ACTIVE.value),
    )
)


def active_personal_serial_of(person: ColumnElement[Any]) -> ScalarSelect[Any]:
    """A column expression: the person's active personal certificate (for one-query views)."""
    return _ACTIVE_PERSONAL.where(certificates.c.person_id == person).scalar_subquery()


def active_personal_serial(conn: Connection, person_id: str) -> str | None:
    row = conn.execute(
        _ACTIVE_PERSONAL.where(certificates.c.person_id == person_id).limit(1)
    ).first()
    return None if row is None else str(row.serial)


def insert_signed(conn: Connection, values: Mapping[str, object]) -> None:
    """A certificate signed outside the issuing path (a CA's own, made with its key)."""
    conn.execute(insert(certificates).values(**values))


_RESERVE = insert(certificates)


def reserve(conn: Connection, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert reservations (the serial primary key refuses any reuse)."""
    execute_many(conn, _RESERVE, rows)


_ROW = select(
    certificates.c.serial,
    certificates.c.der,
    certificates.c.state,
    certificates.c.profile,
    certificates.c.issuer,
    certificates.c.person_id,
    certificates.c.token_serial,
    certificates.c.replaces,
    certificates.c.not_before,
    certificates.c.not_after,
    certificates.c.issued_at,
    certificates.c.revoked_at,
    certificates.c.revocation_reason,
    certificates.c.subject,
    certificates.c.fingerprint,
    certificates.c.reserved_at,
)


# The per-request reads are built once, with bound parameters: SQLAlchemy then finds their
# compiled form in its cache instead of building and keying a new statement on every call. The
# in-flight states are spelt as ORs: an IN list is re-rendered at every execution.
_STATE_IN_FLIGHT = or_(*(certificates.c.state == in_sql(s.value) for s in IN_FLIGHT))
_BY_SERIAL = _ROW.where(certificates.c.serial == bindparam("serial"))
_BY_SERIAL_LOCKED = _BY_SERIAL.with_for_update()
_IN_FLIGHT = _ROW.where(and_(certificates.c.replaces == bindparam("serial"), _STATE_IN_FLIGHT))
_SERIALS: BindParameter[Any] = bindparam("serials", expanding=True)
_MANY_WITH_IN_FLIGHT = _ROW.where(
    or_(
        certificates.c.serial.in_(_SERIALS),
        and_(certificates.c.replaces.in_(_SERIALS), _STATE_IN_FLIGHT),
    )
)
_MANY_LOCKED = (
    _ROW.where(certificates.c.serial.in_(_SERIALS))
    .order_by(certificates.c.serial)
    .with_for_update()
)
_MANY = _ROW.where(certificates.c.serial.in_(_SERIALS))


def get(conn: Connection, serial: str, *, lock: bool = False) -> AnyRow | None:
    """One certificate's row (locked for the transaction with `lock`)."""
    return conn.execute(_BY_SERIAL_LOCKED if lock else _BY_SERIAL, {"serial": serial}).first()


_FIXED_BY_SERIAL = FixedRead(_BY_SERIAL)


def read(db: Database, serial: str) -> Any | None:
    """One certificate's row as `get` gives it, read alone (no transaction) on the driver's
    cursor: the read that starts every signed request of a holder."""
    return db.fetch_first(_FIXED_BY_SERIAL, {"serial": serial})


async def read_async(db: Database, serial: str) -> Any | None:
    """`read` on the event loop (`Database.fetch_async`): a renewal's first read."""
    found = await db.fetch_async(_FIXED_BY_SERIAL, {"serial": serial})
    return found[0] if found else None


def with_renewals_in_flight(
    conn: Connection, serials: Iterable[str]
) -> dict[str, tuple[AnyRow | None, list[AnyRow]]]:
    """For each of `serials`, its row and every renewal of it being issued or waiting to be
    installed, in one query (per 500: what a batch of renewals checks first); nothing locked
    (see `locked`)."""
    wanted = set(serials)
    found: dict[str, tuple[AnyRow | None, list[AnyRow]]] = {s: (None, []) for s in wanted}
    for row in rows_in(conn, _MANY_WITH_IN_FLIGHT, "serials", wanted):
        if row.serial in found:
            found[row.serial] = (row, found[row.serial][1])
        if row.replaces in found and CertState(row.state) in IN_FLIGHT:
            found[row.replaces][1].append(row)
    return found


def locked(
    conn: Connection, rows: Mapping[str, AnyRow | None], *, stale: bool = False
) -> dict[str, AnyRow | None]:
    """`rows` (by serial), read in this write transaction, now locked for it. On SQLite the
    transaction holds the whole database already, so they are `rows` themselves (read again only
    if `stale`: the transaction changed certificates since). On PostgreSQL they are read again
    with `FOR UPDATE`, in serial order: processes locking overlapping batches queue, never
    deadlock."""
    if conn.dialect.name == "sqlite" and not stale:
        return dict(rows)
    query = _MANY if conn.dialect.name == "sqlite" else _MANY_LOCKED
    found: dict[str, AnyRow | None] = dict.fromkeys(sorted(rows))
    for row in rows_in(conn, query, "serials", rows):
        found[row.serial] = row
    return found


def serials_starting(conn: Connection, prefix: str, limit: int) -> list[str]:
    """Up to `limit` serials that start with `prefix` (lowercase hex), sorted."""
    query = (
        select(certificates.c.serial)
        .where(certificates.c.serial.startswith(prefix, autoescape=True))
        .order_by(certificates.c.serial)
        .limit(limit)
    )
    return [str(s) for s in conn.execute(query).scalars()]


def in_flight_renewal(conn: Connection, serial: str) -> AnyRow | None:
    """The renewal of `serial` being issued or waiting to be installed, if any."""
    return conn.execute(_IN_FLIGHT, {"serial": serial}).first()


_LATEST_RENEWAL = (
    _ROW.where(
        and_(
            certificates.c.replaces == bindparam("serial"),
            or_(
                certificates.c.state == in_sql(CertState.PENDING_INSTALL.value),
                certificates.c.state == in_sql(CertState.ACTIVE.value),
            ),
        )
    )
    .order_by(certificates.c.reserved_at.desc())
    .limit(1)
)


def latest_renewal(conn: Connection, serial: str) -> AnyRow | None:
    """The newest certificate that renewed `serial`, pending or installed."""
    return conn.execute(_LATEST_RENEWAL, {"serial": serial}).first()


def active_successor(conn: Connection, serial: str) -> str | None:
    """The active certificate that superseded `serial`."""
    found = conn.execute(
        select(certificates.c.serial).where(
            and_(
                certificates.c.replaces == serial,
                certificates.c.state == in_sql(CertState.ACTIVE.value),
            )
        )
    ).scalar()
    return None if found is None else str(found)


def in_state_since(
    conn: Connection,
    state: CertState,
    column: str,
    cutoff: dt.datetime,
) -> list[str]:
    """Serials in `state` whose `column` time is at or before `cutoff` (stale work to close)."""
    condition = and_(certificates.c.state == in_sql(state.value), certificates.c[column] <= cutoff)
    return [str(s) for s in conn.execute(select(certificates.c.serial).where(condition)).scalars()]


def still_valid(conn: Connection, issuer: str, now: dt.datetime) -> tuple[int, dt.datetime | None]:
    """How many of `issuer`'s certificates are (or may become) valid at `now`, and until when
    the last of them is: what keeps a retiring CA from being retired. A reservation has no
    dates yet and counts."""
    row = conn.execute(
        select(func.count(), func.max(certificates.c.not_after)).where(
            and_(
                certificates.c.issuer == issuer,
                certificates.c.state.in_([in_sql(s.value) for s in MAY_BE_VALID]),
                or_(certificates.c.not_after.is_(None), certificates.c.not_after >= now),
            )
        )
    ).one()
    return int(row[0]), row[1]


def last_expiry(conn: Connection, issuer: str) -> dt.datetime | None:
    """The latest notAfter of anything `issuer` signed (its final CRL must last until then)."""
    found: dt.datetime | None = conn.execute(
        select(func.max(certificates.c.not_after)).where(certificates.c.issuer == issuer)
    ).scalar()
    return found


def search(
    conn: Connection,
    person_id: str | None = None,
    state: CertState | None = None,
    text: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[AnyRow]:
    """Newest first (then by serial: a stable order for pages from `offset`); `text` matches a
    serial prefix (as typed: any case, colons, 0x, leading zeros), a person id or part of the
    subject (any case)."""
    order = (certificates.c.reserved_at.desc(), certificates.c.serial)
    query = _ROW.order_by(*order).limit(limit).offset(offset)
    if person_id:
        query = query.where(certificates.c.person_id == person_id)
    if state is not None:
        query = query.where(certificates.c.state == in_sql(state.value))
    if text and text.strip():
        needle = text.strip()
        serial = needle.lower().removeprefix("0x").replace(":", "").lstrip("0")
        query = query.where(
            or_(
                certificates.c.person_id == needle,
                func.lower(certificates.c.subject).contains(needle.lower(), autoescape=True),
                *([certificates.c.serial.startswith(serial, autoescape=True)] if serial else []),
            )
        )
    return list(conn.execute(query))


# Certificates still in use: a departure or a lost token revokes these.
_IN_USE = certificates.c.state.in_(
    [in_sql(CertState.ACTIVE.value), in_sql(CertState.PENDING_INSTALL.value)]
)


def in_use_of_person(conn: Connection, person_id: str) -> list[str]:
    """Serials of `person_id`'s certificates in use (active or waiting to be installed), sorted."""
    query = select(certificates.c.serial).where(certificates.c.person_id == person_id, _IN_USE)
    return sorted(conn.execute(query).scalars())


def personal_of_person(conn: Connection, person_id: str) -> list[AnyRow]:
    """`person_id`'s personal certificates, reserved ones included, newest reservation first
    (`serial`, `state`, `der`, `reserved_at`)."""
    query = (
        select(
            certificates.c.serial,
            certificates.c.state,
            certificates.c.der,
            certificates.c.reserved_at,
        )
        .where(certificates.c.person_id == person_id, certificates.c.profile == in_sql(PERSONAL))
        .order_by(certificates.c.reserved_at.desc())
    )
    return list(conn.execute(query))


def in_use_on_token(conn: Connection, token_serial: str, keeper_id: str | None) -> list[str]:
    """Serials of the personal certificates in use on the token, sorted; with `keeper_id`, also
    the keeper's that are recorded on no token (their key may be on this one)."""
    on_token = certificates.c.token_serial == token_serial
    if keeper_id is not None:
        on_token = or_(
            on_token,
            (certificates.c.person_id == keeper_id) & certificates.c.token_serial.is_(None),
        )
    query = select(certificates.c.serial).where(
        on_token, certificates.c.profile == in_sql(PERSONAL), _IN_USE
    )
    return sorted(conn.execute(query).scalars())


def renewed(conn: Connection, serials: Sequence[str]) -> set[str]:
    """Which of `serials` have a renewal waiting to be installed or installed."""
    found: set[str] = set()
    for i in range(0, len(serials), 500):
        found.update(
            conn.execute(
                select(certificates.c.replaces).where(
                    certificates.c.replaces.in_(serials[i : i + 500]),
                    certificates.c.state.in_(
                        [in_sql(CertState.PENDING_INSTALL.value), in_sql(CertState.ACTIVE.value)]
                    ),
                )
            ).scalars()
        )
    return found
