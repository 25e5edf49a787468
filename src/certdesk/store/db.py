"""Engines and transactions for SQLite (WAL, the embedded default) and PostgreSQL.

Writes go through `Database.write()`: on SQLite that is `BEGIN IMMEDIATE`, so the read-then-write
steps of a use case (check, then insert) never interleave with another writer; on PostgreSQL the
audit head row, updated in every write, serialises the chain. An audited write is also
journalled (`store/journal.py`): its line is fsynced before the commit, its marker follows it.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Row,
    Select,
    String,
    Update,
    create_engine,
    event,
    text,
    type_coerce,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import ColumnElement

from certdesk.domain.errors import CertdeskError
from certdesk.store import journal as journal_file

SYNCHRONOUS = ("off", "normal", "full", "extra")
# A pooled PostgreSQL connection idle longer than this is pinged before use (one round trip);
# one used more recently is trusted: a failover in between fails that one request, and the
# pool then drops every connection made before it (docs/deployment.md, PostgreSQL).
PING_AFTER_IDLE_SECONDS = 5.0
_IDLE_SINCE = "certdesk.idle_since"
# Connections of an event loop's pool for `fetch_async` (reads of a statement each, answered in
# a round trip: a few are enough for a process's concurrent logins).
ASYNC_POOL_SIZE = 8
# A row of any query, read by its column names.
AnyRow = Row[*tuple[Any, ...]]


class Database:
    def __init__(self, url: str, *, echo: bool = False, sqlite_synchronous: str = "full") -> None:
        if sqlite_synchronous.lower() not in SYNCHRONOUS:
            raise ValueError(f"sqlite synchronous must be one of {SYNCHRONOUS}")
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = _create(
            url, echo=echo, is_sqlite=self.is_sqlite, synchronous=sqlite_synchronous.upper()
        )
        # Reads of one statement need no BEGIN/COMMIT around them (two round trips on PostgreSQL).
        self._autocommit = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._write_lock: AbstractContextManager[object] = (
            threading.RLock() if self.is_sqlite else nullcontext()
        )
        # Set by `services/journal.py` when a process opens its context: every audited write is
        # then journalled; `refusal` (a journal that cannot be trusted) refuses every write.
        self.journal: journal_file.Journal | None = None
        self.refusal: CertdeskError | None = None
        self._listeners: list[Callable[[], None]] = []
        # the event loops' own connections for `fetch_async` (`open_async`)
        self._loop_reads: dict[asyncio.AbstractEventLoop, Any] = {}

        @event.listens_for(self.engine, "before_cursor_execute")
        def _capture(
            conn: Connection, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool
        ) -> None:
            journal_file.capture_statement(conn, statement, params, many)

    def after_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each write transaction that `note_change` marked commits (the
        OCSP responder re-signs at once what this process revoked)."""
        self._listeners.append(listener)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on any error.

        On SQLite, writers of this process queue on a lock first: SQLite's own busy handler makes
        a waiting writer sleep and poll, which under load leaves some waiting for seconds.
        """
        if self.refusal is not None:
            raise self.refusal
        journal = self.journal
        with (
            self._write_lock,
            self.engine.connect().execution_options(certdesk_write=True) as conn,
        ):
            capture = journal_file.begin_capture(conn) if journal is not None else None
            try:
                with conn.begin():
                    yield conn
                    if journal is not None and capture is not None and capture.last:
                        journal.before_commit(capture)  # audited: in the journal before commit
                if journal is not None and capture is not None and capture.last:
                    journal.committed(capture)
            finally:
                if capture is not None:
                    journal_file.end_capture(conn)
                changed = conn.info.pop(_CHANGED, False)
                conn.info.pop(_ANSWERED, None)
        if changed:
            for listener in self._listeners:
                listener()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def read_one(self) -> Iterator[Connection]:
        """For reads of one statement (it sees one snapshot by itself): on PostgreSQL no
        transaction is opened around it, which saves the BEGIN and COMMIT round trips; a
        second statement would see a newer snapshot. On SQLite the same as `read()`."""
        if self.is_sqlite:
            with self.read() as conn:
                yield conn
            return
        with self._autocommit.connect() as conn:
            yield conn

    def fetch(self, fixed: FixedRead, params: dict[str, Any]) -> list[Any]:
        """The rows of one fixed read statement, on a pooled connection outside any transaction
        (on PostgreSQL in autocommit for that statement: no BEGIN or ROLLBACK round trip)."""
        raw = self.engine.raw_connection()  # the pool's checks (a ping after idle) still run
        try:
            return self._fetch_on(raw, fixed, params)
        finally:
            raw.close()  # back to the pool

    def _fetch_on(self, raw: Any, fixed: FixedRead, params: dict[str, Any]) -> list[Any]:
        """`fetch` on `raw`, a connection of the engine's pool (checked out, or kept)."""
        dialect = self.engine.dialect
        sql, bound = fixed.bind(dialect, params)
        driver: Any = raw.dbapi_connection
        cursor = raw.cursor()
        try:
            if not self.is_sqlite:
                driver.autocommit = True
            try:
                cursor.execute(sql, bound)
                found = cursor.fetchall()
            finally:
                if not self.is_sqlite and not driver.closed:
                    driver.autocommit = False  # as the pool hands connections out
        except dialect.loaded_dbapi.Error as exc:
            # as SQLAlchemy's own execution does: a lost server drops this connection and
            # every pooled one made before it, and the error is SQLAlchemy's
            lost = dialect.is_disconnect(exc, driver, cursor)
            if lost:
                raw.invalidate(exc)
                self.engine.dispose(close=False)
            raise _sqlalchemy_error(dialect, sql, bound, exc, lost) from exc
        finally:
            cursor.close()
        return fixed.rows(dialect, found)

    async def fetch_async(self, fixed: FixedRead, params: dict[str, Any]) -> list[Any]:
        """`fetch` for the event loop, without a hand-off to a thread (~110–300 µs of CPU on
        these machines, more than the read): on SQLite the read itself (a local file, work for
        the interpreter that a thread would not overlap); on PostgreSQL over an asynchronous
        connection of the pool `open_async` opened for this event loop, so a slow server holds
        up this request only, not the loop. A loop without one (an application called outside
        its lifespan) reads in a thread."""
        loop = asyncio.get_running_loop()
        kept = self._loop_reads.get(loop)  # SQLite: a connection; PostgreSQL: a pool
        if self.is_sqlite:
            if kept is not None and not kept.is_valid:  # invalidated by an error: a new one
                kept = self._loop_reads[loop] = self.engine.raw_connection()
            return (
                self.fetch(fixed, params) if kept is None else self._fetch_on(kept, fixed, params)
            )
        if kept is None:
            return await loop.run_in_executor(None, self.fetch, fixed, params)
        import psycopg  # the postgres extra: only an engine on PostgreSQL gets here

        dialect = self.engine.dialect
        sql, bound = fixed.bind(dialect, params)
        try:
            async with kept.connection() as conn:
                cursor = await conn.execute(sql, bound)
                found = await cursor.fetchall()
        except psycopg.Error as exc:
            lost = isinstance(exc, psycopg.OperationalError)
            if lost:  # as `fetch`: the other connections are checked, the lost ones dropped
                await kept.check()
            raise _sqlalchemy_error(dialect, sql, bound, exc, lost) from exc
        return fixed.rows(dialect, found)

    async def open_async(self) -> None:
        """The running event loop's own connections for `fetch_async`, before requests (the
        server's start-up): on SQLite one connection kept out of the pool (no check-out per
        read), on PostgreSQL a pool of autocommit connections (psycopg_pool) made with the
        arguments SQLAlchemy's engine uses."""
        loop = asyncio.get_running_loop()
        if loop in self._loop_reads:
            return
        if self.is_sqlite:
            self._loop_reads[loop] = self.engine.raw_connection()
            return
        from psycopg_pool import AsyncConnectionPool

        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        pool = AsyncConnectionPool(
            *args,
            kwargs={**kwargs, "autocommit": True},
            min_size=1,
            max_size=ASYNC_POOL_SIZE,
            open=False,
        )
        self._loop_reads[loop] = pool
        await pool.open()

    async def close_async(self) -> None:
        """Give back the running event loop's connections (the server's shutdown)."""
        kept = self._loop_reads.pop(asyncio.get_running_loop(), None)
        if kept is None:
            return
        closed = kept.close()  # a SQLite connection goes back to the engine's pool
        if closed is not None:
            await closed

    def fetch_first(self, fixed: FixedRead, params: dict[str, Any]) -> Any | None:
        """The first row `fetch` gives, or None."""
        found = self.fetch(fixed, params)
        return found[0] if found else None

    def dispose(self) -> None:
        self.engine.dispose()


# A fixed statement for one dialect: its SQL, the values it holds itself, its parameters' order
# (positional drivers), a result processor (or None) per column.
Prepared = tuple[str, dict[str, Any], list[str], list[Callable[[Any], Any] | None]]


class FixedRead:
    """A read statement fixed when the module loads, compiled once per database engine and run
    on the driver's own cursor (`Database.fetch`, `fetch_in`): for the statement of every
    portal request, SQLAlchemy's execution machinery cost more CPU than the driver's own work
    (~190 µs against ~75 µs). Its values pass through the column types' result processors, as
    SQLAlchemy would; bound values must need no conversion (strings, numbers). Rows are named
    tuples (`row.name`, `row._mapping`)."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.row = _row_type([str(c.key) for c in statement.selected_columns])
        self._prepared: dict[str, Prepared] = {}

    def prepared(self, dialect: Dialect) -> Prepared:
        """(SQL in the driver's parameter style, its constants, parameter order, a processor per
        column)."""
        found = self._prepared.get(dialect.name)
        if found is not None:
            return found
        compiled = self.statement.compile(dialect=dialect)
        constants = {}  # values the statement holds itself (`literal(…)`)
        for bind in compiled.binds.values():
            if bind.expanding or bind.literal_execute:
                raise TypeError(f"{bind.key}: a list or a value rendered into the SQL")
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                raise TypeError(f"{bind.key}: a value that needs conversion")
            if not bind.required:
                constants[compiled.bind_names[bind]] = bind.effective_value
        processors: list[Callable[[Any], Any] | None] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None)
            for c in self.statement.selected_columns
        ]
        made = (str(compiled), constants, list(compiled.positiontup or []), processors)
        self._prepared[dialect.name] = made
        return made

    def bind(self, dialect: Dialect, params: dict[str, Any]) -> tuple[str, Any]:
        """The SQL and its parameters as the driver takes them."""
        sql, constants, names, _ = self.prepared(dialect)
        values = {**constants, **params} if constants else params
        return sql, [values[n] for n in names] if dialect.name == "sqlite" else values

    def rows(self, dialect: Dialect, found: Iterable[Sequence[Any]]) -> list[Any]:
        """The driver's rows, each value through its column's result processor."""
        processors = self.prepared(dialect)[3]
        return [
            self.row(*(v if f is None else f(v) for f, v in zip(processors, r, strict=True)))
            for r in found
        ]


def in_sql(value: str) -> ColumnElement[str]:
    """A state name (or other identifier-like constant) written into the statement's SQL rather
    than bound: SQLite prepares a statement again at every execution when a bound value decides
    whether a partial index applies (the certificates' one-active and one-renewal indexes name
    their states), which cost the login 150 µs on a statement of 14."""
    if not re.fullmatch(r"[a-z_]+", value):
        raise ValueError(f"not a plain name: {value!r}")
    return type_coerce(text(f"'{value}'"), String)


def _row_type(names: list[str]) -> type:
    """A named tuple with SQLAlchemy's `_mapping` too, so the rows' readers work on both."""
    base = namedtuple("FixedRow", names)  # type: ignore[misc]

    class FixedRow(base):
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(self._fields, self, strict=True))

    return FixedRow


# A write's plan on SQLite: its SQL, and per positional parameter either (the row's key, None,
# the column type's bind processor) or (None, the statement's own value, converted once, None)
_Step = tuple[str | None, Any, Callable[[Any], Any] | None]
_Plan = tuple[str, list[_Step]]
_PLANS: dict[tuple[Insert | Update, tuple[str, ...]], _Plan] = {}


def execute_many(
    conn: Connection, statement: Insert | Update, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Run `statement` once per row of `rows` (all with the same keys) in `conn`'s
    transaction; returns the driver's row count (for an UPDATE the rows it changed; for an
    INSERT on PostgreSQL -1).

    On SQLite, on the driver's own cursor: every audited change writes its records this way
    (and issuing a batch's reservations and moves), where SQLAlchemy's per-row bookkeeping cost
    more than the writes (6.8 % of the instructions per issued certificate,
    bench/instructions.py). `statement` is one built once (a module constant, a cached
    statement): its plan is kept per statement object. What SQLAlchemy's execution
    does is kept: the SQL compiled once per statement and set of keys, each value through its
    column type's bind processor, the statement handed to the journal as its cursor event would
    (`journal.capture_statement`), a driver error raised as SQLAlchemy's (an IntegrityError
    stays one). Other engines (and a connection outside a transaction) take SQLAlchemy's own
    executemany."""
    if not rows:
        return 0
    dialect = conn.dialect
    if dialect.name != "sqlite" or not conn.in_transaction():
        return int(conn.execute(statement, list(rows)).rowcount)
    sql, order = _plan(statement, tuple(rows[0]), dialect)
    params = [
        tuple(
            fixed if key is None else row[key] if process is None else process(row[key])
            for key, fixed, process in order
        )
        for row in rows
    ]
    journal_file.capture_statement(conn, sql, params, True)

    def write(cursor: Any) -> int:
        cursor.executemany(sql, params)
        return int(cursor.rowcount)

    return _on_cursor(conn, sql, params, write)


def fetch_in(conn: Connection, fixed: FixedRead, params: dict[str, Any]) -> list[Any]:
    """The rows of `fixed` inside `conn`'s transaction: on SQLite on the driver's cursor (the
    audit head, read by every audited write, cost more through SQLAlchemy than the write it
    guards); elsewhere through SQLAlchemy's execution, which keeps what the statement asks of
    the engine (`FOR UPDATE` on PostgreSQL)."""
    if conn.dialect.name != "sqlite" or not conn.in_transaction():
        return list(conn.execute(fixed.statement, params))
    sql, bound = fixed.bind(conn.dialect, params)
    found = _on_cursor(conn, sql, bound, lambda cursor: cursor.execute(sql, bound).fetchall())
    return fixed.rows(conn.dialect, found)


T = TypeVar("T")


def _on_cursor(conn: Connection, sql: str, params: Any, work: Callable[[Any], T]) -> T:
    """`work(cursor)` on a cursor of `conn`'s SQLite connection, in its transaction; a driver
    error is raised as SQLAlchemy's."""
    dialect = conn.dialect
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return work(cursor)
    except dialect.loaded_dbapi.Error as exc:
        raise _sqlalchemy_error(dialect, sql, params, exc, False) from exc
    finally:
        cursor.close()


def _sqlalchemy_error(
    dialect: Dialect, sql: str, params: Any, exc: Exception, lost: bool
) -> sa_exc.StatementError:
    """The driver's error as SQLAlchemy's execution raises it (an IntegrityError stays one)."""
    return sa_exc.DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost
    )


def _plan(statement: Insert | Update, keys: tuple[str, ...], dialect: Dialect) -> _Plan:
    found = _PLANS.get((statement, keys))
    if found is not None:
        return found
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    if compiled.insert_prefetch or compiled.update_prefetch:
        # SQLAlchemy's execution computes those column defaults; the cursor would not
        names = [c.key for c in [*compiled.insert_prefetch, *compiled.update_prefetch]]
        raise TypeError(f"give every column: {', '.join(names)} would take a default")
    order: list[_Step] = []
    for name in compiled.positiontup or []:
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.required:
            order.append((name, None, process))
        else:  # a value the statement holds (a literal in SET or WHERE): converted here, once
            value = bind.effective_value
            order.append((None, value if process is None else process(value), None))
    plan = _PLANS[(statement, keys)] = (str(compiled), order)
    return plan


_CHANGED = "certdesk.changed"
_ANSWERED = "certdesk.answered"


IN_LIST_SIZE = 500  # values per statement of an expanding IN: well under every driver's limit


def rows_in(conn: Connection, statement: Any, name: str, values: Iterable[str]) -> Iterator[AnyRow]:
    """The rows of `statement` for `values` (distinct, sorted: locks are taken in one order)
    bound to its expanding parameter `name`, one execution per `IN_LIST_SIZE` of them."""
    wanted = sorted(set(values))
    for i in range(0, len(wanted), IN_LIST_SIZE):
        yield from conn.execute(statement, {name: wanted[i : i + IN_LIST_SIZE]})


def is_sqlite_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite database URL (None: another engine, or in memory)."""
    database = make_url(url).database
    if not is_sqlite_url(url) or database in (None, "", ":memory:"):
        return None
    return Path(str(database))


def note_change(conn: Connection) -> None:
    """Mark the transaction on `conn` as one `Database.after_commit` listeners hear about."""
    conn.info[_CHANGED] = True


def note_answered(conn: Connection, serials: Iterable[str]) -> None:
    """Mark certificates whose OCSP answer this transaction saves, true once it commits: a
    change to them alone is not one the listeners need to hear about (`store/audit.py`)."""
    conn.info.setdefault(_ANSWERED, set()).update(serials)


def answered(conn: Connection) -> set[str]:
    """The certificates `note_answered` marked in this transaction."""
    found: set[str] = conn.info.get(_ANSWERED, set())
    return found


def _ping_when_idle(engine: Engine) -> Engine:
    """`pool_pre_ping` for connections idle a while only: pinging at every checkout cost a
    round trip per statement group (~7 % of a renewal's server time)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # new, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # the pool drops this connection and checks out another (SQLAlchemy's contract)
            raise sa_exc.DisconnectionError(str(exc)) from exc

    return engine


def _create(url: str, *, echo: bool, is_sqlite: bool, synchronous: str) -> Engine:
    if not is_sqlite:
        return _ping_when_idle(create_engine(url, echo=echo))
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if not database or database == ":memory:":
        kwargs["poolclass"] = NullPool
    else:  # as many pooled connections as the web server's worker threads: none opened per request
        kwargs |= {"pool_size": 20, "max_overflow": 20}
    engine = create_engine(url, echo=echo, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL (the default): a commit survives power loss too, not only a killed process
        # (WAL + NORMAL could lose the last commits of a certificate already handed out).
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("certdesk_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
