"""The audit hash chain on SQLite and PostgreSQL: one record per change, tampering is named."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest
from sqlalchemy import select, text, update

from certdesk.domain.errors import CertdeskError
from certdesk.services import registry
from certdesk.services.audit_log import AuditReport, verify_chain
from certdesk.services.ca_hierarchy import init_hierarchy
from certdesk.services.context import Context
from certdesk.store.audit import GENESIS, record_hash
from certdesk.store.tables import audit_log


def records(ctx: Context) -> list[dict[str, Any]]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings().all()
    return [dict(r) for r in rows]


def sql(ctx: Context, statement: str, **params: object) -> None:
    """Tamper behind certdesk's back, as someone with database access could."""
    with ctx.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def populate(ctx: Context) -> None:
    """Six real state changes; the clock moves (with microseconds) between them."""
    clock = ctx.clock
    assert hasattr(clock, "advance")
    step = dt.timedelta(minutes=1, microseconds=123_457)
    registry.add_unit(ctx, "FIN", "Finance Bureau", "Li Contact", "it@fin.example", "0771-1")
    clock.advance(step)
    registry.add_unit(ctx, "EDU", "教育局", "王老师", "it@edu.example")
    clock.advance(step)
    registry.add_person(ctx, "p-001", "Zhang San", "FIN", "zhang@fin.example")
    clock.advance(step)
    registry.add_person(ctx, "p-002", "李四", "EDU", "li@edu.example", "0771-2")
    clock.advance(step)
    registry.define_role(ctx, "viewer", "Viewer", ["portal.view"])
    clock.advance(step)
    registry.add_person(ctx, "p-003", "Wang Wu", "FIN", "wang@fin.example")


def kinds(report: AuditReport) -> list[tuple[int, str]]:
    return [(p.seq, p.kind) for p in report.problems]


def test_empty_chain_is_ok(ctx: Context) -> None:
    report = verify_chain(ctx)
    assert report.ok and report.records == 0 and report.problems == []


def test_intact_chain_verifies(ctx: Context) -> None:
    populate(ctx)
    report = verify_chain(ctx)
    assert report.ok, report.problems
    assert report.records == 6
    rows = records(ctx)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["prev_hash"] == GENESIS
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]
    assert len({r["hash"] for r in rows}) == 6
    # times keep their microseconds through the database (the hash covers them)
    assert rows[1]["at"] - rows[0]["at"] == dt.timedelta(minutes=1, microseconds=123_457)


def test_each_change_makes_exactly_one_record(ca_ctx: Context) -> None:
    ctx = ca_ctx  # ca.init, unit.add, person.add already happened
    assert [r["action"] for r in records(ctx)] == ["ca.init", "unit.add", "person.add"]

    registry.add_unit(ctx, "EDU", "Education Bureau", "Wang", "it@edu.example")
    rows = records(ctx)
    assert len(rows) == 4
    last = rows[-1]
    assert (last["action"], last["object_type"], last["object_id"], last["actor"]) == (
        "unit.add",
        "unit",
        "EDU",
        "test",
    )
    assert last["before"] is None
    assert json.loads(last["after"])["name"] == "Education Bureau"

    registry.add_person(ctx, "p-002", "Li Si", "EDU", "li@edu.example")
    rows = records(ctx)
    assert len(rows) == 5
    last = rows[-1]
    assert (last["action"], last["object_type"], last["object_id"]) == (
        "person.add",
        "person",
        "p-002",
    )
    after = json.loads(last["after"])
    assert after["unit_code"] == "EDU" and after["state"] == "active"

    # refusals change nothing, so they record nothing
    with pytest.raises(CertdeskError) as err:
        registry.add_unit(ctx, "EDU", "Again")
    assert err.value.code == "unit.duplicate"
    with pytest.raises(CertdeskError) as err:
        registry.add_person(ctx, "p-009", "Nobody", "NOPE", "n@x.example")
    assert err.value.code == "unit.not_found"
    with pytest.raises(CertdeskError) as err:
        init_hierarchy(ctx)
    assert err.value.code == "ca.already_initialised"
    assert len(records(ctx)) == 5

    report = verify_chain(ctx)
    assert report.ok and report.records == 5


def test_edited_record_is_named(ctx: Context) -> None:
    populate(ctx)
    sql(ctx, """UPDATE audit_log SET "after" = :v WHERE seq = 3""", v='{"name":"Someone Else"}')
    report = verify_chain(ctx)
    assert not report.ok
    assert kinds(report) == [(3, "edited")]


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "cli:mallory"), ("action", "unit.remove"), ("object_id", "p-999")],
)
def test_any_edited_column_is_found(ctx: Context, column: str, value: str) -> None:
    populate(ctx)
    sql(ctx, f"UPDATE audit_log SET {column} = :v WHERE seq = 5", v=value)
    assert kinds(verify_chain(ctx)) == [(5, "edited")]


def test_edited_time_is_found(ctx: Context) -> None:
    populate(ctx)
    sql(
        ctx,
        "UPDATE audit_log SET at = (SELECT at FROM audit_log WHERE seq = 4) WHERE seq = 2",
    )
    report = verify_chain(ctx)
    assert kinds(report) == [(2, "edited")]


def test_deleted_middle_record_is_missing(ctx: Context) -> None:
    populate(ctx)
    sql(ctx, "DELETE FROM audit_log WHERE seq = 3")
    report = verify_chain(ctx)
    assert not report.ok
    assert report.records == 5
    first = report.problems[0]
    assert first.kind == "missing"
    assert first.seq == 3  # the deleted record is named
    assert "deleted before 4" in first.detail


def test_swapped_records_are_detected(ctx: Context) -> None:
    populate(ctx)
    # swap seq 2 and 4 through a temporary seq (the primary key allows no duplicate)
    sql(ctx, "UPDATE audit_log SET seq = 1000 WHERE seq = 2")
    sql(ctx, "UPDATE audit_log SET seq = 2 WHERE seq = 4")
    sql(ctx, "UPDATE audit_log SET seq = 4 WHERE seq = 1000")
    report = verify_chain(ctx)
    assert not report.ok
    assert report.records == 6
    assert report.problems[0].seq == 2
    found = kinds(report)
    assert (2, "reordered") in found and (2, "edited") in found
    assert all(seq in {2, 3, 4, 5} for seq, _ in found)


def rehash(seq: int, row: dict[str, Any], prev_hash: str) -> str:
    return record_hash(
        seq,
        row["at"],
        row["actor"],
        row["action"],
        row["object_type"],
        row["object_id"],
        row["before"],
        row["after"],
        prev_hash,
    )


def test_swap_with_recomputed_hashes_still_breaks_the_chain(ctx: Context) -> None:
    """A tamperer who swaps two records and re-hashes both cannot hide it: the next link breaks."""
    populate(ctx)
    rows = {r["seq"]: r for r in records(ctx)}
    a, b = rows[3], rows[4]
    h3 = rehash(3, b, a["prev_hash"])
    h4 = rehash(4, a, h3)
    content = ("at", "actor", "action", "object_type", "object_id", "before", "after")
    with ctx.db.engine.begin() as conn:
        for seq, src, prev, digest in ((3, b, a["prev_hash"], h3), (4, a, h3, h4)):
            conn.execute(
                update(audit_log)
                .where(audit_log.c.seq == seq)
                .values(**{k: src[k] for k in content}, prev_hash=prev, hash=digest)
            )
    report = verify_chain(ctx)
    assert not report.ok
    # records 3 and 4 are consistent in themselves, but record 5 no longer follows record 4
    assert kinds(report) == [(5, "reordered")]


def test_deleted_last_record_is_truncation(ctx: Context) -> None:
    populate(ctx)
    sql(ctx, "DELETE FROM audit_log WHERE seq = 6")
    report = verify_chain(ctx)
    assert not report.ok
    assert report.records == 5
    assert kinds(report) == [(6, "truncated")]
    assert "6" in report.problems[0].detail and "5" in report.problems[0].detail


def test_appending_after_tampering_does_not_heal_it(ctx: Context) -> None:
    populate(ctx)
    sql(ctx, """UPDATE audit_log SET "after" = NULL WHERE seq = 2""")
    registry.add_unit(ctx, "HR", "Human Resources")
    report = verify_chain(ctx)
    assert report.records == 7
    assert kinds(report) == [(2, "edited")]


def test_concurrent_writers_chain_one_after_another(ctx: Context) -> None:
    """Writers in many threads (as a server's, or two machines') each take the chain's head in
    turn: every record gets its own sequence number and the chain verifies."""
    from concurrent.futures import ThreadPoolExecutor

    from certdesk.store import audit

    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

    def write(n: int) -> None:
        for i in range(15):
            with ctx.db.write() as conn:
                audit.append(
                    conn, at=at, actor=f"t{n}", action="test.write", object_type="test",
                    object_id=f"{n}-{i}",
                )  # fmt: skip

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(write, range(6)))
    written = [r for r in records(ctx) if r["action"] == "test.write"]
    assert len(written) == 90
    assert verify_chain(ctx).ok
