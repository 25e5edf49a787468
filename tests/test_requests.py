"""The office's paperwork as requests, through the REST API (real TestClient presenting the demo
staff's certificates) and the real `certdesk request` console script in a subprocess."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import select

import test_cli
from certdesk.config import Config
from certdesk.domain.clock import SystemClock
from certdesk.domain.errors import CertdeskError
from certdesk.services import certificates, registry, requests, tokens
from certdesk.services.context import Context
from certdesk.services.journal import attach
from certdesk.store.db import Database
from certdesk.store.tables import audit_log
from conftest import FixedClock
from officers import OTHER_PERSON, STAFF, Office, open_office, sqlite_only
from portal_client import issue_for
from test_cli import Desk, assert_refused

desk, registry_desk = test_cli.desk, test_cli.registry_desk  # the CLI tests' fixtures
PROBLEM = "application/problem+json"
PDF = b"%PDF-1.4\n% signed revocation letter\n%%EOF\n"


@pytest.fixture
def office(ctx: Context) -> Office:
    """The demo office, plus a second RA officer (the two-person rule needs two)."""
    office = open_office(ctx)
    registry.add_person(ctx, "demo-ra2", "Second Officer", "DEMO", "ra2@demo.example", "", "ra")
    office.ders["ra2"] = issue_for(ctx, "demo-ra2")
    return office


def actions(office: Office, seq: int, object_id: str) -> list[tuple[str, str]]:
    return [(actor, action) for actor, action, oid in office.actions_since(seq) if oid == object_id]


def test_departure_filed_by_unit_contact_approved_by_ra(office: Office) -> None:
    holder, contact, ra = STAFF["holder"], office.api("unit_officer"), office.api("ra")
    serial = office.principal("holder").serial
    ra.post("/api/v1/tokens", json={"serial": "TK-D"})
    ra.post("/api/v1/tokens/TK-D/assign", json={"person_id": holder})
    seq = office.last_seq()
    filed = contact.post(
        "/api/v1/requests",
        json={"kind": "departure", "person_id": holder, "remark": "left on 30 Nov"},
    )
    assert filed.status_code == 201, filed.text
    rid = filed.json()["request_id"]
    assert filed.json()["state"] == "submitted" and filed.json()["filed_by"] == "person:demo-it"
    # the unit contact sees it in their unit's list, with its signed form attached
    form = contact.post(
        f"/api/v1/requests/{rid}/attachment",
        files={"file": ("letter.pdf", PDF, "application/pdf")},
    )
    assert form.status_code == 200 and form.json()["attachment_name"] == "letter.pdf"
    assert [r["request_id"] for r in contact.get("/api/v1/requests").json()] == [rid]
    got = ra.get(f"/api/v1/requests/{rid}/attachment")
    assert got.content == PDF and got.headers["content-type"] == "application/pdf"
    # nothing happened yet: the holder still logs in
    assert office.api("holder", csrf=False).get("/api/v1/me").status_code == 200
    queue = ra.get("/api/v1/requests?state=submitted&kind=departure&unit=DEMO").json()
    assert [r["request_id"] for r in queue] == [rid]
    approved = ra.post(f"/api/v1/requests/{rid}/approve")
    assert approved.status_code == 200, approved.text
    done = approved.json()["request"]
    assert done["state"] == "carried_out" and done["decided_by"] == "person:demo-ra"
    assert done["outcome"] == {"revoked": [serial], "tokens_due_back": ["TK-D"]}
    record = certificates.get_certificate(office.ctx, serial)
    assert (record.state.value, record.revocation_reason) == ("revoked", "affiliationChanged")
    assert office.api("holder", csrf=False).get("/api/v1/me").json()["code"] == "login.departed"
    assert actions(office, seq, rid) == [
        ("person:demo-it", "request.file"),
        ("person:demo-it", "request.attach"),
        ("person:demo-ra", "request.approved"),
        ("person:demo-ra", "request.carried_out"),
    ]
    assert ("person:demo-ra", "person.depart", holder) in office.actions_since(seq)
    # the token is due back, overdue once the return period has passed, until it is returned
    (due,) = ra.get("/api/v1/requests/due-back").json()
    assert (due["token_serial"], due["person_id"], due["overdue_days"]) == ("TK-D", holder, 0)
    clock = office.ctx.clock
    assert isinstance(clock, FixedClock)
    clock.advance(dt.timedelta(days=office.ctx.config.requests.token_return_days + 3))
    assert ra.get("/api/v1/requests/due-back").json()[0]["overdue_days"] == 3
    refused = contact.get("/api/v1/requests/due-back")
    assert refused.status_code == 403 and refused.json()["code"] == "access.denied"
    assert ra.post("/api/v1/tokens/TK-D/return").status_code == 200
    assert ra.get("/api/v1/requests/due-back").json() == []
    # deciding it again is refused
    again = ra.post(f"/api/v1/requests/{rid}/approve")
    assert again.status_code == 409 and again.json()["code"] == "request.not_submitted"


def test_two_person_rule_in_both_languages_and_nothing_changes(office: Office) -> None:
    ra, ra2 = office.api("ra"), office.api("ra2")
    person = OTHER_PERSON[0]
    filed = ra.post(
        "/api/v1/requests",
        json={"kind": "position_change", "person_id": person, "position_code": "approver"},
    )
    assert filed.status_code == 201, filed.text
    rid = filed.json()["request_id"]
    seq = office.last_seq()
    for lang, phrase in (("en", "two-person rule"), ("zh-CN", "双人复核")):
        own = office.api("ra")
        own.headers["Accept-Language"] = lang
        for path, body in (("approve", None), ("reject", {"reason": "no"})):
            refused = own.post(f"/api/v1/requests/{rid}/{path}", json=body)
            assert refused.status_code == 403
            assert refused.headers["content-type"] == PROBLEM
            assert refused.json()["code"] == "request.own"
            assert phrase in refused.json()["detail"], refused.json()
    assert office.actions_since(seq) == []
    assert ra.get(f"/api/v1/requests/{rid}").json()["state"] == "submitted"
    assert registry.find_person(office.ctx, person).position_code == "clerk"
    approved = ra2.post(f"/api/v1/requests/{rid}/approve")
    assert approved.json()["request"]["state"] == "carried_out"
    assert registry.find_person(office.ctx, person).position_code == "approver"
    assert actions(office, seq, person) == [("person:demo-ra2", "person.reposition")]


def test_unit_contact_files_for_own_unit_only(office: Office) -> None:
    contact = office.api("unit_officer")
    seq = office.last_seq()
    body = {"kind": "departure", "person_id": OTHER_PERSON[0]}
    refused = contact.post("/api/v1/requests", json=body)
    assert refused.status_code == 403 and refused.json()["code"] == "access.other_unit"
    assert requests.list_requests(office.ctx) == []
    assert [a for _, a, _ in office.actions_since(seq)] == ["access.denied"]
    other = contact.get("/api/v1/requests?unit=OTHER")
    assert other.status_code == 403 and other.json()["code"] == "access.other_unit"
    holder = office.api("holder")
    denied = holder.post("/api/v1/requests", json={**body, "person_id": STAFF["holder"]})
    assert denied.status_code == 403 and denied.json()["code"] == "access.denied"
    # nor can a unit contact decide
    filed = contact.post("/api/v1/requests", json={**body, "person_id": STAFF["approver"]})
    rid = filed.json()["request_id"]
    assert contact.post(f"/api/v1/requests/{rid}/approve").json()["code"] == "access.denied"


@sqlite_only
def test_lost_token_is_carried_out_on_filing(office: Office) -> None:
    ra, contact = office.api("ra"), office.api("unit_officer")
    serial = office.principal("holder").serial
    ra.post("/api/v1/tokens", json={"serial": "TK-L"})
    ra.post("/api/v1/tokens/TK-L/assign", json={"person_id": STAFF["holder"]})
    filed = contact.post(
        "/api/v1/requests",
        json={"kind": "lost_token", "person_id": STAFF["holder"], "token_serial": "TK-L"},
    )
    assert filed.status_code == 201, filed.text
    assert filed.json()["state"] == "carried_out"
    assert filed.json()["outcome"] == {"token": "TK-L", "revoked": [serial]}
    record = certificates.get_certificate(office.ctx, serial)
    assert record.revocation_reason == "keyCompromise"
    # a second report of the same token is refused as a whole: no second request
    again = contact.post(
        "/api/v1/requests",
        json={"kind": "lost_token", "person_id": STAFF["holder"], "token_serial": "TK-L"},
    )
    assert again.json()["code"] == "token.already_lost"
    # nor can a unit contact revoke someone else's token by naming it for one of their own
    ra.post("/api/v1/tokens", json={"serial": "TK-O"})
    ra.post("/api/v1/tokens/TK-O/assign", json={"person_id": OTHER_PERSON[0]})
    theirs = contact.post(
        "/api/v1/requests",
        json={"kind": "lost_token", "person_id": STAFF["holder"], "token_serial": "TK-O"},
    )
    assert theirs.status_code == 409 and theirs.json()["code"] == "token.not_kept_by"
    assert [t.state.value for t in tokens.list_tokens(office.ctx) if t.serial == "TK-O"] == [
        "issued"
    ]
    assert len(requests.list_requests(office.ctx)) == 1


@sqlite_only
def test_re_enrolment_gives_a_code_and_failures_are_recorded(office: Office) -> None:
    ra, ra2 = office.api("ra"), office.api("ra2")
    person = OTHER_PERSON[0]
    rid = ra.post("/api/v1/requests", json={"kind": "re_enrolment", "person_id": person}).json()[
        "request_id"
    ]
    decided = ra2.post(f"/api/v1/requests/{rid}/approve").json()
    assert decided["request"]["state"] == "carried_out" and len(decided["enrolment_code"]) >= 16
    assert "enrolment_code_expires_at" in decided["request"]["outcome"]
    # a departure approved after the person already left: failed, with the reason, nothing else
    rid = ra.post("/api/v1/requests", json={"kind": "departure", "person_id": person}).json()[
        "request_id"
    ]
    registry.mark_departed(office.ctx, person)
    seq = office.last_seq()
    failed = ra2.post(f"/api/v1/requests/{rid}/approve").json()["request"]
    assert (failed["state"], failed["reason"]) == ("failed", "person.already_departed")
    assert [a for _, a, _ in office.actions_since(seq)] == ["request.approved", "request.failed"]
    # filing for someone who already left is refused
    refused = ra.post("/api/v1/requests", json={"kind": "departure", "person_id": person})
    assert refused.json()["code"] == "person.already_departed"


@sqlite_only
def test_reject_withdraw_and_bad_input(office: Office) -> None:
    ra, ra2, contact = office.api("ra"), office.api("ra2"), office.api("unit_officer")
    holder = STAFF["holder"]
    body = {"kind": "position_change", "person_id": holder, "position_code": "approver"}
    rid = contact.post("/api/v1/requests", json=body).json()["request_id"]
    assert ra2.post(f"/api/v1/requests/{rid}/withdraw").json()["code"] == "request.not_filer"
    no_reason = ra.post(f"/api/v1/requests/{rid}/reject", json={"reason": " "})
    assert no_reason.status_code in (400, 422)
    rejected = ra.post(f"/api/v1/requests/{rid}/reject", json={"reason": "form not signed"})
    assert (rejected.json()["state"], rejected.json()["reason"]) == ("rejected", "form not signed")
    assert (
        contact.post(f"/api/v1/requests/{rid}/withdraw").json()["code"] == "request.not_submitted"
    )
    rid = contact.post("/api/v1/requests", json=body).json()["request_id"]
    assert contact.post(f"/api/v1/requests/{rid}/withdraw").json()["state"] == "withdrawn"
    assert ra.post(f"/api/v1/requests/{rid}/approve").json()["code"] == "request.not_submitted"
    missing = contact.post("/api/v1/requests", json={**body, "position_code": None})
    assert missing.json()["code"] == "request.missing_detail"
    unknown = contact.post("/api/v1/requests", json={**body, "position_code": "nope"})
    assert unknown.json()["code"] == "position.not_found"
    rid = contact.post("/api/v1/requests", json=body).json()["request_id"]
    not_pdf = contact.post(
        f"/api/v1/requests/{rid}/attachment",
        files={"file": ("letter.pdf", b"MZ\x90\x00 a program", "application/pdf")},
    )
    assert not_pdf.status_code == 415 and not_pdf.json()["code"] == "form.wrong_type"
    odt = contact.post(
        f"/api/v1/requests/{rid}/attachment",
        files={"file": ("letter.txt", b"plain text", "text/plain")},
    )
    assert odt.json()["code"] == "form.wrong_type"
    assert ra.get(f"/api/v1/requests/{rid}").json()["attachment_name"] is None
    listed = ra.get("/api/v1/requests?state=rejected").json()
    assert [r["state"] for r in listed] == ["rejected"]
    assert ra.get("/api/v1/requests?kind=nope").json()["code"] == "request.bad_kind"


def test_cli_two_person_rule_and_approval(registry_desk: Desk) -> None:
    cli = registry_desk
    config = Config().replace(paths={"data_dir": str(cli.db.parent)})
    db = Database(config.database_url)
    attach(config, db, SystemClock(), "cli:officer-a")  # the desk's journal records it too
    office = Context(config, db, actor="cli:officer-a")
    filed = requests.file_request(office, "departure", "p-001", remark="left")
    db.dispose()
    rid = filed.request_id
    for lang, phrase in (("C.UTF-8", "two-person rule"), ("zh_CN.UTF-8", "双人复核")):
        refused = cli.run("request", "approve", rid, lang=lang, USER="officer-a")
        assert_refused(refused, 6, "request.own", phrase)
    shown = cli.json("request", "show", rid, USER="officer-a")
    assert isinstance(shown, dict) and shown["state"] == "submitted"
    listed = cli.json("request", "list", "--state", "submitted")
    assert isinstance(listed, list) and [r["request_id"] for r in listed] == [rid]
    cli.ok("request", "approve", rid, USER="officer-b")
    shown = cli.json("request", "show", rid)
    assert isinstance(shown, dict)
    assert (shown["state"], shown["decided_by"]) == ("carried_out", "cli:officer-b")
    people = cli.json("person", "list")
    assert isinstance(people, list) and people[0]["state"] == "departed"
    db = Database(f"sqlite:///{cli.db}")
    with db.read() as conn:
        trail = conn.execute(
            select(audit_log.c.actor, audit_log.c.action).where(audit_log.c.object_id == rid)
        ).all()
    db.dispose()
    assert [tuple(r) for r in trail] == [
        ("cli:officer-a", "request.file"),
        ("cli:officer-b", "request.approved"),
        ("cli:officer-b", "request.carried_out"),
    ]
    again = cli.run("request", "reject", rid, "--reason", "late", USER="officer-b")
    assert_refused(again, 3, "request.not_submitted")
    assert json.loads(cli.ok("request", "due-back", "--json").stdout) == []


def test_two_officers_approving_at_once_one_wins(ctx: Context) -> None:
    """Two connections (threads) approve the same request: one carries it out, the other is
    refused, and the person was repositioned once (SQLite and PostgreSQL)."""
    registry.add_unit(ctx, "FIN", "Finance Bureau")
    registry.define_role(ctx, "r", "Role", ["portal.home"])
    for code in ("clerk", "approver"):
        registry.define_position(ctx, code, code.title(), ["r"])
    registry.add_person(ctx, "p-1", "Zhang San", "FIN", "z@fin.example", position_code="clerk")
    rid = requests.file_request(
        ctx.acting_as("cli:filer"), "position_change", "p-1", {"position_code": "approver"}
    ).request_id
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}
    refusals: list[CertdeskError] = []

    def approve(actor: str) -> None:
        start.wait()
        try:
            outcomes[actor] = requests.approve(ctx.acting_as(actor), rid).request.state.value
        except CertdeskError as refused:
            outcomes[actor] = refused.code
            refusals.append(refused)

    threads = [threading.Thread(target=approve, args=(f"cli:{n}",)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values())[0] == "carried_out", outcomes
    assert sorted(outcomes.values())[1] in ("request.not_submitted", "request.state_changed")
    (refused,) = refusals  # told in both languages that nothing was changed
    assert refused.status == 409 and rid in refused.message("en")
    assert "othing was changed" in refused.message("en")
    assert "未作任何更改" in refused.message("zh-CN")
    with ctx.db.read() as conn:
        moves = conn.execute(
            select(audit_log.c.action).where(audit_log.c.object_id.in_([rid, "p-1"]))
        ).scalars()
        assert sorted(moves) == [
            "person.add",
            "person.reposition",
            "request.approved",
            "request.carried_out",
            "request.file",
        ]


@sqlite_only
def test_console_file_with_pdf_confirm_approve_and_two_person(office: Office) -> None:
    holder = STAFF["holder"]
    contact = office.page("unit_officer")
    filed = contact.post(
        "/console/requests",
        data={"csrf_token": office.csrf("unit_officer"), "kind": "departure", "person_id": holder},
        files={"form": ("letter.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert filed.status_code == 303, filed.text
    rid = filed.headers["location"].split("/")[-1].split("?")[0]
    mine = contact.get("/console/requests")
    assert rid in mine.text and "Request filed." not in mine.text
    zh = office.page("unit_officer", lang="zh-CN").get(f"/console/requests/{rid}")
    assert "离职离岗" in zh.text and "已提交" in zh.text and "letter.pdf" in zh.text
    ra = office.page("ra")
    csrf = office.csrf("ra")
    queue = ra.get("/console/requests?state=submitted&kind=departure")
    assert rid in queue.text
    ask = ra.post(f"/console/requests/{rid}/approve", data={"csrf_token": csrf})
    assert "Approve the request?" in ask.text and 'name="confirm" value="yes"' in ask.text
    assert requests.find_request(office.ctx, rid).state.value == "submitted"
    approved = ra.post(
        f"/console/requests/{rid}/approve", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert approved.status_code == 200 and 'id="request-state">Carried out' in approved.text
    assert registry.find_person(office.ctx, holder).state.value == "departed"
    # the office files one itself: the same officer cannot approve it, in the console either
    own = ra.post(
        "/console/requests",
        data={"csrf_token": csrf, "kind": "re_enrolment", "person_id": OTHER_PERSON[0]},
        follow_redirects=False,
    )
    own_id = own.headers["location"].split("/")[-1].split("?")[0]
    first_step = ra.post(f"/console/requests/{own_id}/approve", data={"csrf_token": csrf})
    assert first_step.status_code == 403 and 'data-code="request.own"' in first_step.text
    refused = ra.post(
        f"/console/requests/{own_id}/approve", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert refused.status_code == 403 and 'data-code="request.own"' in refused.text
    assert requests.find_request(office.ctx, own_id).state.value == "submitted"
    no_csrf = ra.post(f"/console/requests/{own_id}/withdraw", data={})
    assert no_csrf.status_code == 403 and 'data-code="access.csrf"' in no_csrf.text
    due = ra.get("/console/requests/due-back")
    assert due.status_code == 200 and 'id="due-back"' in due.text


def test_cli_positions_and_roles_editable_with_guards(registry_desk: Desk) -> None:
    cli = registry_desk
    cli.ok("role", "set", "ca_admin", "--name", "CA admin", "--permission", "ca.rollover")
    cli.ok("role", "set", "holder", "--name", "Holder", "--permission", "portal.home")
    cli.ok("position", "set", "ca_admin", "--name", "CA admin", "--role", "ca_admin")
    cli.ok("position", "set", "spare", "--name", "Spare", "--role", "holder")
    cli.ok(
        "person",
        "add",
        "p-ca",
        "--name",
        "Chen CA",
        "--unit",
        "FIN",
        "--email",
        "c@fin.example",
        "--position",
        "ca_admin",
    )
    # the last holder of ca.rollover cannot lose it, by the role nor by the position
    for args in (
        ("role", "set", "ca_admin", "--name", "CA admin", "--permission", "ca.view"),
        ("position", "set", "ca_admin", "--name", "CA admin", "--role", "holder"),
    ):
        assert_refused(cli.run(*args), 3, "position.last_holder", "p-ca")
    refused = cli.run("position", "delete", "ca_admin", lang="zh_CN.UTF-8")
    assert_refused(refused, 3, "position.in_use", "p-ca", "请先为其调整岗位")
    cli.ok("position", "set", "ca_admin", "--name", "CA administrator", "--role", "ca_admin")
    cli.ok("position", "delete", "spare")
    positions = cli.json("position", "list")
    assert positions == [{"code": "ca_admin", "name": "CA administrator"}]
    db = Database(f"sqlite:///{cli.db}")
    with db.read() as conn:
        trail = conn.execute(
            select(audit_log.c.action, audit_log.c.before, audit_log.c.after)
            .where(audit_log.c.object_id == "ca_admin", audit_log.c.object_type == "position")
            .order_by(audit_log.c.seq)
        ).all()
    db.dispose()
    assert [r.action for r in trail] == ["position.define", "position.define"]
    assert json.loads(trail[1].before) == {"name": "CA admin", "roles": ["ca_admin"]}
    assert json.loads(trail[1].after) == {"name": "CA administrator", "roles": ["ca_admin"]}
