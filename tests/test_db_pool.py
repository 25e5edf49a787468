"""PostgreSQL connections from the pool: one idle a while is pinged before use, so a connection
the server dropped (restart, failover, idle timeout) is replaced without failing a request; one
used moments ago is trusted without the round trip. Fixed reads on the driver's own cursor
(`Database.fetch`) and batched writes (`execute_many`) behave as SQLAlchemy's execution does."""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import bindparam, create_engine, func, literal, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from certdesk.store import db as db_module
from certdesk.store import journal
from certdesk.store.db import Database, FixedRead, execute_many, fetch_in
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


def unit_rows(prefix: str, at: dt.datetime) -> list[dict[str, object]]:
    return [
        {
            "code": f"{prefix}{i}",
            "name": f"单位 {i}",
            "contact_name": "",
            "contact_email": f"c{i}@example.org" if i % 2 else "",
            "contact_phone": "",
            "created_at": at + dt.timedelta(microseconds=i),
        }
        for i in range(3)
    ]


def stored(database: Database, prefix: str) -> list[tuple[object, ...]]:
    """The rows as the engine keeps them (on SQLite the datetime's text), without the prefix."""
    with database.read_one() as conn:
        found = conn.exec_driver_sql("SELECT * FROM units ORDER BY code").all()
    return [(row[0][len(prefix) :], *row[1:]) for row in found if row[0].startswith(prefix)]


def test_execute_many_writes_what_sqlalchemy_writes(database: Database) -> None:
    """The same statement and rows through `execute_many` and through SQLAlchemy's executemany
    store the same values (an aware datetime from another zone as the column type converts
    it, on SQLite the same text); an UPDATE with values of its own (a literal in SET and WHERE)
    reports the rows it changed."""
    metadata.create_all(database.engine)
    at = dt.datetime(2026, 12, 3, 8, 30, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with database.write() as conn:
        execute_many(conn, units.insert(), unit_rows("m", at))
        conn.execute(units.insert(), unit_rows("s", at))
    assert stored(database, "m") == stored(database, "s")
    rename = (
        update(units)
        .where(units.c.code == bindparam("b_code"), units.c.contact_phone == "")
        .values(name=bindparam("b_name"), contact_phone="110")
    )
    with database.write() as conn:
        changes = [{"b_code": "m0", "b_name": "甲"}, {"b_code": "m2", "b_name": "乙"}]
        assert execute_many(conn, rename, changes) == 2
        assert execute_many(conn, rename, changes) == 0  # the WHERE literal holds them back
        conn.execute(rename, [{"b_code": "s0", "b_name": "甲"}, {"b_code": "s2", "b_name": "乙"}])
        assert execute_many(conn, rename, []) == 0
    assert stored(database, "m") == stored(database, "s")
    assert [row[1] for row in stored(database, "m")] == ["甲", "单位 1", "乙"]


def test_execute_many_refusals_are_sqlalchemys_and_roll_back(database: Database) -> None:
    """A duplicate key is SQLAlchemy's IntegrityError (what issuance catches to draw a serial
    again), and nothing of the transaction stays."""
    metadata.create_all(database.engine)
    at = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    with pytest.raises(IntegrityError), database.write() as conn:
        execute_many(conn, units.insert(), unit_rows("d", at))
        execute_many(conn, units.insert(), unit_rows("d", at)[1:])
    assert stored(database, "d") == []


def test_execute_many_refuses_a_row_missing_a_defaulted_column(tmp_path: Path) -> None:
    """A column default is computed by SQLAlchemy's execution, which the driver's cursor skips:
    a row that leaves one out is refused before anything is written, not stored with NULL."""
    database = Database(f"sqlite:///{tmp_path / 'c.db'}")
    metadata.create_all(database.engine)
    row = unit_rows("x", dt.datetime(2026, 12, 3, tzinfo=dt.UTC))[0]
    del row["contact_phone"]
    with pytest.raises(TypeError, match="contact_phone"), database.write() as conn:
        execute_many(conn, units.insert(), [row])
    assert stored(database, "x") == []
    database.dispose()


def test_execute_many_is_journalled(tmp_path: Path) -> None:
    """The statement reaches the journal's capture as SQLAlchemy's cursor event would give it,
    for a restore to replay (tests/test_backup_restore.py replays issuances)."""
    database = Database(f"sqlite:///{tmp_path / 'j.db'}")
    metadata.create_all(database.engine)
    rows = unit_rows("j", dt.datetime(2026, 12, 3, tzinfo=dt.UTC))
    captured: dict[str, list[list[object]]] = {}
    with database.engine.connect() as conn, conn.begin():
        capture = journal.begin_capture(conn)
        execute_many(conn, units.insert(), rows)
        captured["many"] = capture.statements
        capture.statements = []
        conn.execute(units.insert(), unit_rows("k", dt.datetime(2026, 12, 3, tzinfo=dt.UTC)))
        captured["sqlalchemy"] = capture.statements
        journal.end_capture(conn)
    ((sql, params, many),) = captured["many"]
    ((sql_sa, params_sa, many_sa),) = captured["sqlalchemy"]
    assert (sql, many, len(params)) == (sql_sa, many_sa, len(params_sa)) == (sql, True, 3)
    assert [p[1:] for p in params] == [p[1:] for p in params_sa]  # all but the code
    database.dispose()


def test_a_fixed_read_inside_a_transaction_sees_its_writes(database: Database) -> None:
    """`fetch_in` reads in the caller's transaction (what it wrote and has not committed), with
    the column types' conversions, as SQLAlchemy's execution of the same statement does; a
    rolled-back write is gone for it too."""
    metadata.create_all(database.engine)
    at = dt.datetime(2026, 12, 3, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    fixed = FixedRead(
        select(units.c.code, units.c.created_at).where(units.c.code == bindparam("code"))
    )
    with pytest.raises(RuntimeError), database.write() as conn:
        execute_many(conn, units.insert(), unit_rows("t", at))
        for _ in range(2):  # compiled once, then reused
            (row,) = fetch_in(conn, fixed, {"code": "t1"})
            expected = conn.execute(fixed.statement, {"code": "t1"}).one()
            assert tuple(row) == tuple(expected) == ("t1", at + dt.timedelta(microseconds=1))
            assert row.created_at.tzinfo is not None
        raise RuntimeError("roll back")
    with database.write() as conn:
        assert fetch_in(conn, fixed, {"code": "t1"}) == []


def test_a_fixed_read_on_the_event_loop_answers_as_fetch_does(database: Database) -> None:
    """`fetch_async` (the login's read): the same converted rows as `fetch`, from the event
    loop's own pool on PostgreSQL (or the read itself on SQLite), and from a thread for a loop
    without a pool (an application called outside its lifespan); a driver error is raised as
    SQLAlchemy's; the pool closes with `close_async`."""
    metadata.create_all(database.engine)
    at = dt.datetime(2026, 12, 3, 9, 15, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with database.write() as conn:
        execute_many(conn, units.insert(), unit_rows("a", at))
    fixed = FixedRead(
        select(units.c.code, units.c.created_at, literal(None).label("absent")).where(
            units.c.code == bindparam("code")
        )
    )
    missing = FixedRead(select(text("code")).select_from(text("no_such_table")))

    async def reads() -> list[list[object]]:
        found = [await database.fetch_async(fixed, {"code": "a2"})]  # no pool yet: a thread
        await database.open_async()
        await database.open_async()  # once per loop
        for _ in range(3):  # after psycopg's threshold its statements are prepared
            found.append(await database.fetch_async(fixed, {"code": "a2"}))
        found.append(await database.fetch_async(fixed, {"code": "none such"}))
        with pytest.raises(DBAPIError):
            await database.fetch_async(missing, {})
        found.append(await database.fetch_async(fixed, {"code": "a1"}))  # the pool goes on
        if database.is_sqlite:  # the loop's connection, invalidated by an error, is replaced
            database._loop_reads[asyncio.get_running_loop()].invalidate()
            assert await database.fetch_async(fixed, {"code": "a1"}) == found[-1]
        await database.close_async()
        return found

    found = asyncio.run(reads())
    expected = database.fetch(fixed, {"code": "a2"})
    assert [tuple(r) for r in expected] == [("a2", at + dt.timedelta(microseconds=2), None)]
    assert found[:4] == [expected] * 4 and found[4] == []
    assert found[5][0].code == "a1" and found[2][0].created_at.tzinfo == dt.UTC
    assert database._loop_reads == {} and database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@PG_ONLY
def test_the_event_loops_reads_survive_a_dropped_connection(
    database: Database, db_url: str
) -> None:
    """A connection the server dropped fails at most the read that finds it (as `fetch`; the
    pool may also have seen it go first), and the pool's other connections are checked then:
    the reads after it get live ones."""
    fixed = FixedRead(select(func.pg_backend_pid().label("pid")))

    async def reads() -> tuple[int, list[object]]:
        await database.open_async()
        try:
            dropped = (await database.fetch_async(fixed, {}))[0].pid
            terminate(db_url, dropped)
            answers: list[object] = []
            for _ in range(3):
                try:
                    answers.append((await database.fetch_async(fixed, {}))[0].pid)
                except DBAPIError as exc:
                    answers.append(exc.connection_invalidated)
            return dropped, answers
        finally:
            await database.close_async()

    dropped, answers = asyncio.run(reads())
    failed = [a for a in answers if type(a) is not int]
    assert failed in ([], [True]), answers  # at most one read, its connection dropped
    assert type(answers[-1]) is int and dropped not in answers, answers


def test_state_names_are_written_into_the_sql_not_bound() -> None:
    """SQLite prepares a statement again at every execution when a bound value decides whether a
    partial index applies (the certificates' indexes name states and the profile): the login's
    statement binds nothing but the serial and its subqueries' limits, and `in_sql` takes only
    plain names."""
    from sqlalchemy.dialects import postgresql, sqlite

    from certdesk.store.logins import _IDENTIFY

    for dialect in (sqlite.dialect(), postgresql.dialect()):
        sql, constants, _, _ = _IDENTIFY.prepared(dialect)
        assert set(constants.values()) <= {0, 1} and "'pending_install'" in sql
    with pytest.raises(ValueError, match="plain name"):
        db_module.in_sql("active' OR '1'='1")


CERTIFICATE_TABLES = {"certificates", "successor", "_renewed", "renewed"}


def bound_state_names(source: str) -> list[int]:
    """Lines of `source` comparing a certificate's state or profile with a bound value (a
    constant, `X.value`, `PERSONAL`) rather than `in_sql(...)`, with == or IN."""

    def of_certificates(node: ast.expr) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr in ("state", "profile")
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "c"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id in CERTIFICATE_TABLES
        )

    def bound(node: ast.expr) -> bool:
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "in_sql":
            return False
        if isinstance(node, (ast.List, ast.Tuple)):
            return any(bound(e) for e in node.elts)
        if isinstance(node, ast.ListComp):
            return bound(node.elt)
        return not isinstance(node, ast.Starred)  # a name, a constant, an `X.value`

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and of_certificates(node.left):
            if any(isinstance(op, ast.Eq) for op in node.ops) and bound(node.comparators[0]):
                found.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "in_"
            and of_certificates(node.func.value)
            and node.args
            and bound(node.args[0])
        ):
            found.append(node.lineno)
    return found


def test_no_statement_on_certificates_binds_a_state_name() -> None:
    """What `in_sql` is for, kept: the store compares the certificates' state and profile with
    names written into the SQL (`store/states.py`'s moves, by primary key, are not affected)."""
    store = Path(db_module.__file__).parent
    found = {p.name: bound_state_names(p.read_text()) for p in sorted(store.glob("*.py"))}
    assert {name: lines for name, lines in found.items() if lines} == {}
    assert bound_state_names("certificates.c.state == CertState.ACTIVE.value") == [1]
    assert bound_state_names("successor.c.state.in_([A.value, in_sql(B.value)])") == [1]
    assert bound_state_names("certificates.c.state == in_sql(CertState.ACTIVE.value)") == []
