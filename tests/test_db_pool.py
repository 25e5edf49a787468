"""PostgreSQL connections from the pool: one idle a while is pinged before use, so a connection
the server dropped (restart, failover, idle timeout) is replaced without failing a request; one
used moments ago is trusted without the round trip. Fixed reads on the driver's own cursor
(`Database.fetch`) behave as SQLAlchemy's execution does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import bindparam, create_engine, func, literal, select, text
from sqlalchemy.exc import DBAPIError

from certdesk.store import db as db_module
from certdesk.store.db import Database, FixedRead
from certdesk.store.tables import metadata, units

PG_ONLY = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def backend_pid(database: Database) -> int:
    with database.read_one() as conn:
        return int(conn.execute(text("select pg_backend_pid()")).scalar_one())


def terminate(db_url: str, pid: int) -> None:
    admin = create_engine(db_url)
    with admin.begin() as conn:
        assert conn.execute(text("select pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    admin.dispose()


@PG_ONLY
def test_a_dropped_idle_connection_is_replaced_before_use(
    database: Database, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = backend_pid(database)
    terminate(db_url, dropped)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle "long"
    assert backend_pid(database) != dropped  # the request succeeds, on a new connection


@PG_ONLY
def test_a_connection_used_moments_ago_is_not_pinged(database: Database, db_url: str) -> None:
    """Without the ping the dropped connection is found out by the statement itself: it fails
    once, and the pool then starts afresh (what a failover within seconds of use costs)."""
    dropped = backend_pid(database)
    terminate(db_url, dropped)
    with pytest.raises(DBAPIError):
        backend_pid(database)
    assert backend_pid(database) != dropped


def test_a_fixed_read_answers_as_sqlalchemy_does(database: Database) -> None:
    """`Database.fetch` runs on the driver's cursor: the same rows, the column types' own
    conversion (aware UTC datetimes, NULLs), the parameters bound, on SQLite and PostgreSQL; the
    connection goes back to the pool as it came (a write transaction after it still rolls back)."""
    metadata.create_all(database.engine)
    at = dt.datetime(2026, 12, 2, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with database.write() as conn:
        conn.execute(units.insert(), [{"code": "u1", "name": "Unit 1", "created_at": at}])
    statement = select(units.c.code, units.c.created_at, literal(None).label("absent")).where(
        units.c.code == bindparam("code")
    )
    fixed = FixedRead(statement)
    for _ in range(2):  # compiled once, then reused
        (row,) = database.fetch(fixed, {"code": "u1"})
        with database.read_one() as conn:
            expected = conn.execute(statement, {"code": "u1"}).one()
        assert tuple(row) == tuple(expected) == ("u1", at, None)
        assert row.created_at.tzinfo == dt.UTC and row._mapping["code"] == "u1"
    assert database.fetch(fixed, {"code": "none such"}) == []
    with pytest.raises(RuntimeError), database.write() as conn:
        conn.execute(units.insert(), [{"code": "u2", "name": "Unit 2", "created_at": at}])
        raise RuntimeError("rolled back")
    assert database.fetch(fixed, {"code": "u2"}) == []


@PG_ONLY
def test_a_fixed_read_on_a_dropped_connection_fails_once_then_reconnects(
    database: Database, db_url: str
) -> None:
    fixed = FixedRead(select(func.pg_backend_pid().label("pid")))
    dropped = database.fetch(fixed, {})[0].pid
    terminate(db_url, dropped)
    with pytest.raises(DBAPIError):
        database.fetch(fixed, {})
    assert database.fetch(fixed, {})[0].pid != dropped


def test_a_fixed_read_refuses_what_the_driver_could_not_be_given_as_is(database: Database) -> None:
    """An IN list is rendered at execution and a datetime is converted by its column type:
    neither can go to the driver's cursor unchanged, so such a statement is refused up front."""
    in_list = FixedRead(select(units.c.code).where(units.c.code.in_(["u1", "u2"])))
    with pytest.raises(TypeError, match="list"):
        database.fetch(in_list, {})
    at = bindparam("at", type_=units.c.created_at.type)
    with pytest.raises(TypeError, match="conversion"):
        database.fetch(FixedRead(select(units.c.code).where(units.c.created_at < at)), {})
