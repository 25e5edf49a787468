"""Positions, roles and permissions edited in the console and the REST API (the same registry
service as `certdesk position|role`), and the last-holder guard on departure and repositioning
on every path: API, console, an approved request and the `certdesk request` command."""

from __future__ import annotations

import json
import re
import threading

import pytest
from sqlalchemy import select

from certdesk.config import Config
from certdesk.domain.clock import SystemClock
from certdesk.domain.errors import CertdeskError
from certdesk.services import certificates, registry, requests
from certdesk.services.context import Context
from certdesk.services.journal import attach
from certdesk.store import registry as registry_store
from certdesk.store.db import Database
from certdesk.store.tables import audit_log
from officers import STAFF, Office, open_office, sqlite_only
from test_cli import Desk, desk, registry_desk  # noqa: F401 (fixtures)

PROBLEM = "application/problem+json"


@pytest.fixture
def office(ctx: Context) -> Office:
    return open_office(ctx)


def post(office: Office, role: str, url: str, data: dict[str, object]) -> object:
    return office.page(role).post(
        url, data={"csrf_token": office.csrf(role), **data}, follow_redirects=False
    )


def code_of(html: str) -> str:
    found = re.search(r'data-code="([^"]+)"', html)
    return found.group(1) if found else ""


def trail(office: Office, object_id: str) -> list[tuple[str, object, object]]:
    with office.ctx.db.read() as conn:
        rows = conn.execute(
            select(audit_log.c.action, audit_log.c.before, audit_log.c.after)
            .where(audit_log.c.object_id == object_id)
            .order_by(audit_log.c.seq)
        ).all()
    return [(r.action, json.loads(r.before or "null"), json.loads(r.after or "null")) for r in rows]


@sqlite_only
def test_api_edits_roles_and_positions_effective_at_the_next_request(office: Office) -> None:
    ra, holder = office.api("ra"), office.api("holder", csrf=False)
    assert holder.get("/finance/payments").status_code == 403
    role = ra.put(
        "/api/v1/roles/payer",
        json={"name": "Payer", "permissions": ["payment.approve", "budget.view"]},
    )
    assert role.status_code == 200, role.text
    assert role.json() == {
        "code": "payer",
        "name": "Payer",
        "permissions": ["budget.view", "payment.approve"],
    }
    clerk = ra.put(
        "/api/v1/positions/clerk",
        json={"name": "Senior clerk", "roles": ["holder", "finance_clerk", "payer"]},
    )
    assert clerk.status_code == 200, clerk.text
    assert clerk.json()["holders"] == [STAFF["holder"], "other-001"]
    # the same certificate, the next request: the new permission and the new name
    assert holder.get("/finance/payments").status_code == 200
    me = holder.get("/api/v1/me").json()
    assert me["position_name"] == "Senior clerk" and "payment.approve" in me["permissions"]
    assert me["certificate"]["serial"] == office.principal("holder").serial
    assert trail(office, "clerk")[-1] == (
        "position.define",
        {"name": "Finance clerk", "roles": ["finance_clerk", "holder"]},
        {"name": "Senior clerk", "roles": ["finance_clerk", "holder", "payer"]},
    )
    assert trail(office, "payer") == [
        ("role.define", None, {"name": "Payer", "permissions": ["budget.view", "payment.approve"]})
    ]
    listed = {p["code"]: p for p in ra.get("/api/v1/positions").json()}
    assert listed["clerk"]["roles"] == ["finance_clerk", "holder", "payer"]
    assert "payer" in {r["code"] for r in ra.get("/api/v1/roles").json()}
    # a position in use is not deleted; the refusal names who holds it
    for lang, phrase in (("en", "give them another position"), ("zh-CN", "请先为其调整岗位")):
        ra.headers["Accept-Language"] = lang
        in_use = ra.delete("/api/v1/positions/clerk")
        assert in_use.status_code == 409 and in_use.headers["content-type"] == PROBLEM
        assert in_use.json()["code"] == "position.in_use"
        assert STAFF["holder"] in in_use.json()["detail"] and phrase in in_use.json()["detail"]
    assert ra.put("/api/v1/positions/spare", json={"name": "Spare", "roles": []}).is_success
    assert ra.delete("/api/v1/positions/spare").status_code == 204
    assert "spare" not in {p["code"] for p in ra.get("/api/v1/positions").json()}
    gone = ra.delete("/api/v1/positions/spare")
    assert gone.status_code == 404 and gone.json()["code"] == "position.not_found"
    # bad input: a code that cannot be a path, an unknown role, a body with more fields
    bad = ra.put("/api/v1/roles/payer", json={"name": "P", "permissions": ["pay ment"]})
    assert bad.status_code == 400 and bad.json()["code"] == "input.bad_key"
    unknown = ra.put("/api/v1/positions/x", json={"name": "X", "roles": ["nope"]})
    assert unknown.json()["code"] == "input.invalid"
    extra = ra.put("/api/v1/positions/x", json={"name": "X", "roles": [], "holders": ["me"]})
    assert extra.status_code == 422 and extra.json()["code"] == "input.invalid"
    # nobody would hold ca.rollover any more: refused, nothing changed
    seq = office.last_seq()
    last = ra.put("/api/v1/positions/ca_admin", json={"name": "CA", "roles": ["holder"]})
    assert last.status_code == 409 and last.json()["code"] == "position.last_holder"
    assert STAFF["ca_admin"] in last.json()["detail"]
    assert office.actions_since(seq) == []


@sqlite_only
def test_console_edits_positions_and_roles(office: Office) -> None:
    ra = office.page("ra")
    listing = ra.get("/console/positions")
    assert listing.status_code == 200 and 'id="positions"' in listing.text
    assert "Registration officer" in listing.text and "ra.positions.manage" in listing.text
    zh = office.page("ra", lang="zh-CN").get("/console/positions")
    assert "岗位和角色" in zh.text and "新增岗位" in zh.text
    made = post(
        office,
        "ra",
        "/console/roles",
        {
            "code": "payer",
            "name": "Payer",
            "permissions": ["budget.view"],
            "other": "payment.approve, payment.void",
        },
    )
    assert made.status_code == 303 and made.headers["location"].startswith("/console/roles/payer")
    assert registry.positions_overview(office.ctx).role_names["payer"] == "Payer"
    page = ra.get("/console/roles/payer")
    for permission in ("budget.view", "payment.approve", "payment.void"):
        assert f'value="{permission}" checked' in page.text
    saved = post(
        office,
        "ra",
        "/console/positions",
        {"code": "cashier", "name": "Cashier", "roles": ["holder", "payer"]},
    )
    assert saved.status_code == 303
    edit = ra.get(saved.headers["location"])
    assert "Position saved" in edit.text and 'value="payer" checked' in edit.text
    assert 'value="ra_officer" checked' not in edit.text
    # deleting asks first; nothing changes until Confirm
    asked = post(office, "ra", "/console/positions/cashier/delete", {})
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.text
    assert "cashier" in {p.code for p in registry.list_positions(office.ctx)}
    deleted = post(office, "ra", "/console/positions/cashier/delete", {"confirm": "yes"})
    assert deleted.status_code == 303
    assert "cashier" not in {p.code for p in registry.list_positions(office.ctx)}
    # in use: refused at the first step, naming the holders
    refused = post(office, "ra", "/console/positions/clerk/delete", {})
    assert refused.status_code == 409 and code_of(refused.text) == "position.in_use"
    assert STAFF["holder"] in refused.text
    assert ra.get("/console/positions/nope").status_code == 404
    assert code_of(ra.get("/console/roles/nope").text) == "role.not_found"
    no_csrf = ra.post("/console/roles", data={"code": "x", "name": "X"}, follow_redirects=False)
    assert no_csrf.status_code == 403 and code_of(no_csrf.text) == "access.csrf"
    # the unit officer has no such page
    assert office.page("unit_officer").get("/console/positions").status_code == 403


def test_last_holder_cannot_leave_or_move(office: Office) -> None:
    """demo-ca alone holds ca.rollover: moving them or marking them departed is refused in the
    API, the console's first step and an approved request alike; nothing changes."""
    ca, ra = STAFF["ca_admin"], office.api("ra")
    serial = office.principal("ca_admin").serial
    seq = office.last_seq()
    moved = ra.put(f"/api/v1/people/{ca}/position", json={"position_code": "clerk"})
    assert moved.status_code == 409 and moved.json()["code"] == "position.last_holder"
    assert "ca.rollover" in moved.json()["detail"]
    gone = ra.post(f"/api/v1/people/{ca}/depart")
    assert gone.status_code == 409 and gone.json()["code"] == "position.last_holder"
    asked = post(office, "ra", f"/console/people/{ca}/depart", {})
    assert asked.status_code == 409 and code_of(asked.text) == "position.last_holder"
    assert office.actions_since(seq) == []
    contact = office.ctx.acting_as(f"person:{STAFF['unit_officer']}")
    for kind, details in (("departure", {}), ("position_change", {"position_code": "clerk"})):
        rid = requests.file_request(contact, kind, ca, details).request_id
        decided = ra.post(f"/api/v1/requests/{rid}/approve").json()["request"]
        assert (decided["state"], decided["reason"]) == ("failed", "position.last_holder")
    person = registry.find_person(office.ctx, ca)
    assert (person.state.value, person.position_code) == ("active", "ca_admin")
    assert certificates.get_certificate(office.ctx, serial).state.value == "active"
    # once someone else holds it, the move goes through
    registry.add_person(
        office.ctx, "ca-2", "Second Admin", "DEMO", "ca2@demo.example", position_code="ca_admin"
    )
    assert ra.put(f"/api/v1/people/{ca}/position", json={"position_code": "clerk"}).is_success
    with pytest.raises(CertdeskError) as refused:
        registry.mark_departed(office.ctx, "ca-2")
    assert refused.value.code == "position.last_holder"


def test_cli_refuses_the_last_holders_departure(registry_desk: Desk) -> None:  # noqa: F811
    """`certdesk request approve` of the departure of the one holder of ca.rollover: recorded
    failed with the refusal's code, the person still active."""
    cli = registry_desk
    config = Config().replace(paths={"data_dir": str(cli.db.parent)})
    db = Database(config.database_url)
    attach(config, db, SystemClock(), "cli:officer-a")  # the desk's journal records it too
    office = Context(config, db, actor="cli:officer-a")
    registry.define_role(office, "ca_admin", "CA admin", ["ca.rollover"])
    registry.define_position(office, "ca_admin", "CA admin", ["ca_admin"])
    registry.add_person(office, "p-ca", "Chen CA", "FIN", "c@fin.example", position_code="ca_admin")
    filed = requests.file_request(office, "departure", "p-ca")
    db.dispose()
    decided = cli.json("request", "approve", filed.request_id, USER="officer-b")
    assert isinstance(decided, dict)
    assert (decided["request"]["state"], decided["request"]["reason"]) == (
        "failed",
        "position.last_holder",
    )
    db = Database(config.database_url)
    assert registry.find_person(Context(config, db), "p-ca").state.value == "active"
    db.dispose()


def at_once(ctx: Context, people: list[str], departing: bool) -> dict[str, str]:
    """Each person moved to `clerk` (or marked departed) by their own officer, all at once:
    what each got."""
    outcomes: dict[str, str] = {}
    start = threading.Barrier(len(people))

    def move(pid: str) -> None:
        officer = ctx.acting_as(f"cli:{pid}")
        start.wait()
        try:
            if departing:
                registry.mark_departed(officer, pid)
            else:
                registry.set_position(officer, pid, "clerk")
            outcomes[pid] = "moved"
        except CertdeskError as refused:
            outcomes[pid] = refused.code

    threads = [threading.Thread(target=move, args=(pid,)) for pid in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_moves_at_once_leave_someone_holding(ctx: Context) -> None:
    """Two officers at once each move one of the last two holders of ca.rollover away, or mark
    them departed (each alone allowed): one is refused, someone keeps it. Threads with their own
    connections, a few rounds; on PostgreSQL this needs the guard's row lock (SQLite's write
    lock serialises)."""
    registry.add_unit(ctx, "FIN", "Finance Bureau")
    registry.define_role(ctx, "admin", "Admin", ["ca.rollover"])
    registry.define_role(ctx, "plain", "Plain", ["portal.home"])
    registry.define_position(ctx, "ca_admin", "CA admin", ["admin"])
    registry.define_position(ctx, "clerk", "Clerk", ["plain"])
    left: str | None = None
    for round_ in range(4):
        pair = [f"a{round_}", f"b{round_}"]
        for pid in pair:
            registry.add_person(
                ctx, pid, pid, "FIN", f"{pid}@fin.example", position_code="ca_admin"
            )
        if left:  # last round's survivor goes: the pair now are the last two holders
            registry.set_position(ctx, left, "clerk")
        outcomes = at_once(ctx, pair, departing=round_ % 2 == 1)
        assert sorted(outcomes.values()) == ["moved", "position.last_holder"], outcomes
        (left,) = [pid for pid, what in outcomes.items() if what != "moved"]
        with ctx.db.read() as conn:
            assert registry_store.holders(conn, "ca.rollover") == [left]
