"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, a demo CA, a clock.

PostgreSQL is at 127.0.0.1:5432 (database `test`, user `root`) on the machines here; each test
gets its own schema. With CI=true an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from certdesk.config import Config
from certdesk.domain.clock import FixedClock
from certdesk.services import registry
from certdesk.services.ca_hierarchy import init_hierarchy
from certdesk.services.context import Context
from certdesk.services.issuance import Issuance
from certdesk.store.db import Database
from certdesk.store.migrate import upgrade

pytest_plugins = ["softhsm"]

PG_URL = os.environ.get("CERTDESK_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
START = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


def _postgres_or_skip() -> None:
    try:
        with create_engine(PG_URL).connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # the driver's error types vary; all mean "not reachable"
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and is not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'certdesk.db'}"
        return
    _postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


def make_config(tmp_path: Path, db_url: str, **ca: str) -> Config:
    return Config().replace(
        paths={"data_dir": str(tmp_path / "var")},
        database={"url": db_url},
        ca={"passphrase": "test passphrase", **ca},
        issuance={"lint": True},  # every test issuance goes through pkilint before signing
    )


@pytest.fixture
def ctx(tmp_path: Path, db_url: str, clock: FixedClock) -> Iterator[Context]:
    db = Database(db_url)
    upgrade(db)
    yield Context(make_config(tmp_path, db_url), db, clock, actor="test")
    db.dispose()


@pytest.fixture
def ca_ctx(ctx: Context) -> Context:
    """A context with a CA hierarchy, a unit and a person (demo-like)."""
    init_hierarchy(ctx)
    registry.add_unit(ctx, "FIN", "Finance Bureau", "Li Contact", "it@fin.example", "0771-1")
    registry.add_person(ctx, "p-001", "Zhang San", "FIN", "zhang@fin.example")
    return ctx


@pytest.fixture
def issuance(ca_ctx: Context) -> Issuance:
    return Issuance(ca_ctx)


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real openssl command line; the caller asserts on the result."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed")
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)


def openssl_verify(
    pki: Path, leaf: Path, at: dt.datetime, *extra: str | Path
) -> subprocess.CompletedProcess[str]:
    """`openssl verify` of `leaf` against the published root and issuing CA, at time `at`."""
    return openssl(
        "verify",
        "-attime",
        str(int(at.timestamp())),
        *extra,
        "-CAfile",
        pki / "root.pem",
        "-untrusted",
        pki / "issuing.pem",
        leaf,
    )
