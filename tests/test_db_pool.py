"""PostgreSQL connections from the pool: one idle a while is pinged before use, so a connection
the server dropped (restart, failover, idle timeout) is replaced without failing a request; one
used moments ago is trusted without the round trip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from certdesk.store import db as db_module
from certdesk.store.db import Database

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
