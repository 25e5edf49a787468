"""The `authorities` table: each CA's certificate, key reference, role, generation, state and
CRL counter. Its state is written by `store/states.py` only (for `services/lifecycle.py`)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, insert, select, update

from certdesk.domain.states import AuthorityState
from certdesk.store.db import AnyRow, FixedRead, fetch_in
from certdesk.store.tables import authorities

ISSUING_ROLE = "issuing"
_ALL = select(authorities).order_by(authorities.c.role.desc(), authorities.c.generation)
# Asked in every reservation transaction: compiled once, on SQLite on the driver's cursor.
_ACTIVE_ISSUERS = FixedRead(
    select(authorities.c.name, authorities.c.key_type, authorities.c.generation).where(
        authorities.c.role == ISSUING_ROLE, authorities.c.state == AuthorityState.ACTIVE.value
    )
)


def get(conn: Connection, name: str) -> AnyRow | None:
    return conn.execute(select(authorities).where(authorities.c.name == name)).first()


def every(conn: Connection) -> list[AnyRow]:
    """Every CA, roots first, then by generation."""
    return list(conn.execute(_ALL))


def active_issuers(conn: Connection) -> list[tuple[str, str, int]]:
    """(name, key type, generation) of the issuing CAs that issue today."""
    return [(r.name, r.key_type, r.generation) for r in fetch_in(conn, _ACTIVE_ISSUERS, {})]


def issuers_in(conn: Connection, state: AuthorityState) -> list[str]:
    """The ids of the issuing CAs in `state` (e.g. the retiring ones, for retirement)."""
    query = select(authorities.c.name).where(
        authorities.c.role == ISSUING_ROLE, authorities.c.state == state.value
    )
    return [str(name) for name in conn.execute(query.order_by(authorities.c.generation)).scalars()]


def insert_authority(conn: Connection, values: Mapping[str, object]) -> None:
    conn.execute(insert(authorities).values(**values))


def set_crl_number(conn: Connection, name: str, number: int) -> None:
    conn.execute(update(authorities).where(authorities.c.name == name).values(crl_number=number))
