"""The officer REST API under /api/v1: JSON in and out, problem+json refusals, CSRF header."""

from __future__ import annotations

import json

import pytest

from certdesk.services import certificates, content, registry
from certdesk.services.content import MAX_FORM_BYTES
from certdesk.services.context import Context
from officers import OTHER_PERSON, STAFF, Office, open_office, sqlite_only
from portal_client import issue_for

PROBLEM = "application/problem+json"


@pytest.fixture
def office(ctx: Context) -> Office:
    return open_office(ctx)


@sqlite_only
def test_me_tells_who_and_what_and_the_csrf_token(office: Office) -> None:
    me = office.api("ra", csrf=False).get("/api/v1/me")
    assert me.status_code == 200
    body = me.json()
    assert body["person_id"] == "demo-ra" and "ra.people.manage" in body["permissions"]
    assert body["certificate"]["serial"] == office.principal("ra").serial
    assert body["csrf_token"] == office.csrf("ra")
    holder = office.api("holder").get("/api/v1/me").json()
    assert holder["permissions"] == ["budget.view", "payment.create", "portal.home"]
    anonymous = office.api(None).get("/api/v1/me")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "login.no_certificate"


@sqlite_only
def test_state_changes_need_the_csrf_header(office: Office) -> None:
    body = {"code": "API1", "name": "API unit"}
    bare = office.api("ra", csrf=False)
    for headers in ({}, {"X-CSRF-Token": "f" * 64}, {"X-CSRF-Token": office.csrf("auditor")}):
        refused = bare.post("/api/v1/units", json=body, headers=headers)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["code"] == "access.csrf"
    assert "API1" not in [u.code for u in registry.list_units(office.ctx)]
    made = bare.post("/api/v1/units", json=body, headers={"X-CSRF-Token": office.csrf("ra")})
    assert made.status_code == 201 and made.json()["code"] == "API1"


def test_registration_office_workflow(office: Office) -> None:
    ra = office.api("ra")
    seq = office.last_seq()
    assert ra.post("/api/v1/units", json={"code": "U9", "name": "Ninth"}).status_code == 201
    assert "U9" in [u["code"] for u in ra.get("/api/v1/units").json()]
    person = {
        "person_id": "api-1",
        "name": "Zhao Liu",
        "unit_code": "U9",
        "email": "zhao@u9.example",
        "position_code": "clerk",
    }
    assert ra.post("/api/v1/people", json=person).status_code == 201
    assert ra.post("/api/v1/people", json=person).json()["code"] == "person.duplicate"
    assert [p["person_id"] for p in ra.get("/api/v1/people?q=ZHAO").json()] == ["api-1"]
    patched = ra.patch("/api/v1/people/api-1", json={"phone": "0771-9"})
    assert patched.json()["phone"] == "0771-9" and patched.json()["name"] == "Zhao Liu"
    moved = ra.put("/api/v1/people/api-1/position", json={"position_code": "approver"})
    assert moved.json()["position_code"] == "approver"
    # tokens: stock, issue, and the person's certificate on it
    assert ra.post("/api/v1/tokens", json={"serial": "TK-9", "model": "ePass"}).status_code == 201
    assigned = ra.post("/api/v1/tokens/TK-9/assign", json={"person_id": "api-1"})
    assert assigned.json()["keeper_id"] == "api-1" and assigned.json()["state"] == "issued"
    issue_for(office.ctx, "api-1")
    detail = ra.get("/api/v1/people/api-1").json()
    assert [t["serial"] for t in detail["tokens"]] == ["TK-9"]
    (cert,) = detail["certificates"]
    shown = ra.get(f"/api/v1/certificates/{cert['serial']}").json()
    assert shown["pem"].startswith("-----BEGIN CERTIFICATE-----")
    code = ra.post("/api/v1/enrolment-codes", json={"person_id": "api-1", "hours": 4})
    assert code.status_code == 201 and len(code.json()["code"]) >= 16
    departed = ra.post("/api/v1/people/api-1/depart").json()
    assert departed["person"]["state"] == "departed"
    assert departed["revoked"] == [cert["serial"]] and departed["tokens_to_return"] == ["TK-9"]
    returned = ra.post("/api/v1/tokens/TK-9/return")
    assert returned.json()["state"] == "returned" and returned.json()["keeper_id"] is None
    actions = [(actor, action) for actor, action, _ in office.actions_since(seq)]
    assert set(actor for actor, _ in actions) == {"person:demo-ra", "test"}  # test: issue_for
    assert [a for _, a in actions if a != "certificate.issue"][-4:] == [
        "enrolment_code.create",
        "person.depart",
        "certificate.revoke",
        "token.return",
    ]


@sqlite_only
def test_lost_token_revokes_key_compromise_at_once(office: Office) -> None:
    ra = office.api("ra")
    serial = office.principal("holder").serial
    ra.post("/api/v1/tokens", json={"serial": "TK-L"})
    ra.post("/api/v1/tokens/TK-L/assign", json={"person_id": STAFF["holder"]})
    lost = ra.post("/api/v1/tokens/TK-L/lost")
    assert lost.status_code == 200
    assert lost.json() == {
        "token": {
            "serial": "TK-L",
            "model": "",
            "state": "lost",
            "keeper_id": "demo-0001",
            "pin_changed": False,
        },
        "revoked": [serial],
    }
    record = certificates.get_certificate(office.ctx, serial)
    assert (record.state.value, record.revocation_reason) == ("revoked", "keyCompromise")
    assert office.api("holder", csrf=False).get("/api/v1/me").json()["code"] == "login.revoked"
    again = ra.post("/api/v1/tokens/TK-L/lost")
    assert again.status_code == 409 and again.json()["code"] == "token.already_lost"
    assert ra.post("/api/v1/tokens/TK-L/assign", json={"person_id": "demo-0002"}).status_code == 409


@sqlite_only
def test_certificates_search_and_revoke(office: Office) -> None:
    ra = office.api("ra")
    serial = office.principal("approver").serial
    found = ra.get("/api/v1/certificates", params={"q": serial[:8], "state": "active"}).json()
    assert serial in [c["serial"] for c in found]
    assert ra.get("/api/v1/certificates?state=nonsense").json()["code"] == "input.invalid"
    bad = ra.post(f"/api/v1/certificates/{serial}/revoke", json={"reason": "certificateHold"})
    assert bad.status_code == 400 and bad.json()["code"] == "revocation.bad_reason"
    done = ra.post(f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"})
    assert done.json() == {"serial": serial, "reason": "superseded", "previous_state": "active"}
    missing = ra.get("/api/v1/certificates/abcdef")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


MALFORMED = [
    ("post", "/api/v1/units", "{not json"),
    ("post", "/api/v1/units", json.dumps({"code": "X"})),
    ("post", "/api/v1/units", json.dumps({"code": "X", "name": "Y", "admin": True})),
    ("post", "/api/v1/units", json.dumps(["code", "name"])),
    ("post", "/api/v1/people", json.dumps({"person_id": 1, "name": None})),
    ("patch", "/api/v1/people/demo-0001", json.dumps({"unit_code": "OTHER"})),
    ("put", "/api/v1/people/demo-0001/position", ""),
    ("post", "/api/v1/enrolment-codes", json.dumps({"person_id": "demo-0001", "hours": 0})),
    ("post", "/api/v1/certificates/ab/revoke", json.dumps({"reason": ""})),
    ("post", "/api/v1/crl", json.dumps({"issuer": "elsewhere"})),
    ("get", "/api/v1/audit?limit=100000", ""),
]


@sqlite_only
def test_malformed_bodies_get_problem_json_and_change_nothing(office: Office) -> None:
    seq = office.last_seq()
    for method, url, raw in MALFORMED:
        role = "ca_admin" if url.endswith("/crl") else "auditor" if "audit" in url else "ra"
        client = office.api(role)
        headers = {"Content-Type": "application/json", "Accept-Language": "zh-CN"}
        answer = client.request(method, url, content=raw.encode(), headers=headers)
        assert answer.status_code == 422, (url, raw)
        assert answer.headers["content-type"] == PROBLEM
        problem = answer.json()
        assert problem["code"] == "input.invalid" and problem["status"] == 422
        assert problem["detail"].startswith("输入无效")
        assert problem["messages"]["en"].startswith("Invalid input")
        assert problem["errors"] and all("loc" in e and "msg" in e for e in problem["errors"])
    assert office.actions_since(seq) == []
    assert registry.find_person(office.ctx, "demo-0001").unit_code == "DEMO"


@sqlite_only
def test_malformed_console_form_gets_a_page(office: Office) -> None:
    page = office.page("ra").post("/console/units", data={"csrf_token": office.csrf("ra")})
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert 'data-code="input.invalid"' in page.text


@sqlite_only
def test_unit_officer_api_is_their_unit_only(office: Office) -> None:
    it = office.api("unit_officer")
    people = it.get("/api/v1/units/DEMO/people").json()
    assert "demo-0001" in [p["person_id"] for p in people]
    board = it.get("/api/v1/units/DEMO/dashboard").json()
    assert board["unit_code"] == "DEMO" and board["horizon_days"] == 60
    seq = office.last_seq()
    for url in ("/api/v1/units/OTHER/people", "/api/v1/units/OTHER/dashboard"):
        refused = it.get(url)
        assert refused.status_code == 403 and refused.json()["code"] == "access.other_unit"
        assert OTHER_PERSON[1] not in refused.text
    assert [a for _, a, _ in office.actions_since(seq)] == ["access.denied", "access.denied"]
    assert it.get("/api/v1/people?unit=OTHER").json()["code"] == "access.denied"
    # the RA office has no unit officer's view; it has its own
    assert office.api("ra").get("/api/v1/units/DEMO/people").status_code == 403


def test_ca_admin_and_auditor(office: Office) -> None:
    ca = office.api("ca_admin")
    (root, issuing) = ca.get("/api/v1/ca").json()
    assert (root["name"], issuing["name"], issuing["key_storage"]) == ("root", "issuing", "file")
    published = ca.post("/api/v1/crl")
    assert published.status_code == 201
    assert published.json()["number"] > issuing["crl_number"]  # never back (time-derived)
    assert ca.post("/api/v1/crl", json={"issuer": "root"}).json()["issuer"] == "root"
    auditor = office.api("auditor")
    first = auditor.get("/api/v1/audit?limit=5").json()
    assert len(first["records"]) == 5 and first["records"][0]["action"] == "crl.publish"
    older = auditor.get(f"/api/v1/audit?limit=5&before={first['next_before']}").json()
    assert older["records"][0]["seq"] == first["records"][-1]["seq"] - 1
    only = auditor.get("/api/v1/audit?action=crl.publish").json()["records"]
    assert {r["action"] for r in only} == {"crl.publish"}
    verified = auditor.post("/api/v1/audit/verify").json()
    assert verified["ok"] is True and verified["records"] >= 10 and verified["problems"] == []


def test_announcements_and_forms(office: Office) -> None:
    ra = office.api("ra")
    stored = {f.name: f.size for f in content.list_forms(office.ctx)}
    made = ra.post("/api/v1/announcements", json={"title": "Notice", "body": "Renew in March."})
    assert made.status_code == 201 and made.json()["author"] == "person:demo-ra"
    titles = [a["title"] for a in office.api("holder").get("/api/v1/announcements").json()]
    assert "Notice" in titles
    form = ra.post(
        "/api/v1/forms",
        data={"title": "Position change form"},
        files={"file": ("position-change.txt", b"Name: ...\n", "text/plain")},
    )
    assert stored.get("position-change.txt") != 10  # the demo's form is replaced
    assert form.status_code == 201 and form.json()["media_type"].startswith("text/plain")
    too_big = ra.post(
        "/api/v1/forms",
        files={"file": ("big.txt", b"x" * (MAX_FORM_BYTES + 1), "text/plain")},
    )
    assert too_big.status_code == 413 and too_big.headers["content-type"] == PROBLEM
    wrong = ra.post("/api/v1/forms", files={"file": ("a.html", b"<script>", "text/html")})
    assert wrong.status_code == 415 and wrong.json()["code"] == "form.wrong_type"
    holder_upload = office.api("holder").post(
        "/api/v1/forms", files={"file": ("x.txt", b"x", "text/plain")}
    )
    assert holder_upload.status_code == 403
    names = [f.name for f in content.list_forms(office.ctx)]
    assert sorted(names) == sorted(stored)  # nothing but the replacement was stored
    assert office.api("holder").get("/forms/position-change.txt").content == b"Name: ...\n"


@sqlite_only
def test_openapi_documents_every_officer_endpoint(office: Office) -> None:
    doc = office.api(None).get("/openapi.json").json()
    paths = doc["paths"]
    for path, method in [
        ("/api/v1/me", "get"),
        ("/api/v1/people/{person_id}", "patch"),
        ("/api/v1/people/{person_id}/position", "put"),
        ("/api/v1/tokens/{serial}/lost", "post"),
        ("/api/v1/certificates/{serial}/revoke", "post"),
        ("/api/v1/enrolment-codes", "post"),
        ("/api/v1/forms", "post"),
        ("/api/v1/crl", "post"),
        ("/api/v1/audit/verify", "post"),
        ("/api/v1/units/{code}/dashboard", "get"),
    ]:
        operation = paths[path][method]
        assert "403" in operation["responses"], path
    upload = paths["/api/v1/forms"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert not [p for p in paths if p.startswith("/console")]
