"""The authorisation matrix: every role × every route of the application, no leaks.

The routes come from `app.routes`, and the table below must name each of them (and nothing
else): a new page or endpoint fails this test until someone decides who may use it. For each
route and each role — holder, approver, unit officer, RA officer, CA administrator, auditor, and
a visitor without a certificate — one request is made with a valid body and a valid CSRF token:

- allowed: never 401/403, never a server error; and some allowed role gets a 2xx/3xx answer;
- denied: 403 (401 without a certificate) with a refusal code, exactly one audit record
  `access.denied` naming the role's person and nothing else changed, and no data in the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, Route

from certdesk.services import registry, requests, tokens
from certdesk.services.context import Context
from certdesk.services.demo import POSITIONS, ROLES
from certdesk.services.issuance import Issuance
from certdesk.store.certificates import active_personal_serial
from officers import OTHER_PERSON, STAFF, Office, open_office
from portal_client import issue_for

PUBLIC = "public"  # anyone, with or without a certificate
LOGIN = "login"  # anyone logged in
OWN_AUTH = "own-auth"  # authenticated by its own means (JWS, EST code, TLS client certificate)

RULES: dict[tuple[str, str], str] = {
    # public: status, CA downloads, API description
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/livez"): PUBLIC,
    ("GET", "/status"): PUBLIC,
    ("GET", "/pki/{name}"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("HEAD", "/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,  # web/api_docs.py: the page and Swagger UI's files
    ("GET", "/api/docs/{name}"): PUBLIC,
    ("GET", "/.well-known/est/cacerts"): PUBLIC,
    ("GET", "/.well-known/est/csrattrs"): PUBLIC,
    ("POST", "/.well-known/est/simpleenroll"): OWN_AUTH,
    ("POST", "/.well-known/est/simplereenroll"): OWN_AUTH,
    ("GET", "/api/v1/renewal/nonce"): PUBLIC,
    ("HEAD", "/api/v1/renewal/nonce"): PUBLIC,
    ("POST", "/api/v1/renewal/profile"): OWN_AUTH,
    ("POST", "/api/v1/renewal"): OWN_AUTH,
    ("POST", "/api/v1/renewal/pickup"): OWN_AUTH,
    ("POST", "/api/v1/renewal/confirm"): OWN_AUTH,
    ("POST", "/api/v1/tokens/pin-changed"): OWN_AUTH,
    # holder pages
    ("GET", "/"): LOGIN,
    ("GET", "/announcements"): LOGIN,
    ("GET", "/forms"): LOGIN,
    ("GET", "/forms/{name}"): LOGIN,
    ("GET", "/support"): LOGIN,
    ("GET", "/helper"): LOGIN,  # the browser helper's installation page and extension
    ("GET", "/helper/certdesk-extension.zip"): LOGIN,
    ("GET", "/finance/budget"): "budget.view",
    ("GET", "/finance/payments"): "payment.approve",
    # officer console
    ("GET", "/console/units"): "ra.units.manage",
    ("POST", "/console/units"): "ra.units.manage",
    ("GET", "/console/people"): "ra.people.manage",
    ("GET", "/console/people.csv"): "ra.people.manage",
    ("GET", "/console/people/new"): "ra.people.manage",
    ("POST", "/console/people"): "ra.people.manage",
    ("GET", "/console/people/{person_id}"): "ra.people.manage",
    ("POST", "/console/people/{person_id}"): "ra.people.manage",
    ("POST", "/console/people/{person_id}/position"): "ra.people.manage",
    ("POST", "/console/people/{person_id}/depart"): "ra.people.manage",
    ("GET", "/console/tokens"): "ra.tokens.manage",
    ("POST", "/console/tokens"): "ra.tokens.manage",
    ("POST", "/console/tokens/{serial}/assign"): "ra.tokens.manage",
    ("POST", "/console/tokens/{serial}/return"): "ra.tokens.manage",
    ("POST", "/console/tokens/{serial}/lost"): "ra.tokens.manage",
    ("GET", "/console/certificates"): "ra.certs.manage",
    ("GET", "/console/certificates.csv"): "ra.certs.manage",
    ("GET", "/console/certificates/{serial}"): "ra.certs.manage",
    ("POST", "/console/certificates/{serial}/revoke"): "ra.certs.manage",
    ("GET", "/console/codes"): "ra.codes.manage",
    ("POST", "/console/codes"): "ra.codes.manage",
    ("GET", "/console/content"): "ra.content.manage",
    ("POST", "/console/content/announcements"): "ra.content.manage",
    ("POST", "/console/content/forms"): "ra.content.manage",
    ("GET", "/console/unit"): "unit.people.view",
    ("GET", "/console/campaign"): "ra.campaign.view",
    ("GET", "/console/campaign/export"): "ra.campaign.view",
    ("GET", "/console/unit/campaign"): "unit.expiry.view",
    ("GET", "/console/unit/campaign/export"): "unit.expiry.view",
    ("GET", "/console/requests"): "unit.requests.file",
    ("POST", "/console/requests"): "unit.requests.file",
    ("GET", "/console/requests/due-back"): "ra.tokens.manage",
    ("GET", "/console/requests/{request_id}"): "unit.requests.file",
    ("GET", "/console/requests/{request_id}/attachment"): "unit.requests.file",
    ("POST", "/console/requests/{request_id}/withdraw"): "unit.requests.file",
    ("POST", "/console/requests/{request_id}/approve"): "ra.requests.manage",
    ("POST", "/console/requests/{request_id}/reject"): "ra.requests.manage",
    ("GET", "/console/positions"): "ra.positions.manage",
    ("POST", "/console/positions"): "ra.positions.manage",
    ("GET", "/console/positions/{code}"): "ra.positions.manage",
    ("POST", "/console/positions/{code}/delete"): "ra.positions.manage",
    ("GET", "/console/roles/{code}"): "ra.positions.manage",
    ("POST", "/console/roles"): "ra.positions.manage",
    ("GET", "/console/ca"): "ca.view",
    ("POST", "/console/ca/crl"): "ca.crl.publish",
    ("POST", "/console/ca/rollover"): "ca.rollover",
    ("POST", "/console/campaign/remind"): "ra.campaign.remind",
    ("GET", "/console/audit"): "audit.view",
    ("POST", "/console/audit/verify"): "audit.verify",
    # REST API
    ("GET", "/api/v1/me"): LOGIN,
    ("GET", "/api/v1/units"): "ra.units.manage",
    ("POST", "/api/v1/units"): "ra.units.manage",
    ("GET", "/api/v1/people"): "ra.people.manage",
    ("POST", "/api/v1/people"): "ra.people.manage",
    ("GET", "/api/v1/people/{person_id}"): "ra.people.manage",
    ("PATCH", "/api/v1/people/{person_id}"): "ra.people.manage",
    ("PUT", "/api/v1/people/{person_id}/position"): "ra.people.manage",
    ("POST", "/api/v1/people/{person_id}/depart"): "ra.people.manage",
    ("GET", "/api/v1/positions"): "ra.positions.manage",
    ("PUT", "/api/v1/positions/{code}"): "ra.positions.manage",
    ("DELETE", "/api/v1/positions/{code}"): "ra.positions.manage",
    ("GET", "/api/v1/roles"): "ra.positions.manage",
    ("PUT", "/api/v1/roles/{code}"): "ra.positions.manage",
    ("GET", "/api/v1/tokens"): "ra.tokens.manage",
    ("POST", "/api/v1/tokens"): "ra.tokens.manage",
    ("POST", "/api/v1/tokens/{serial}/assign"): "ra.tokens.manage",
    ("POST", "/api/v1/tokens/{serial}/return"): "ra.tokens.manage",
    ("POST", "/api/v1/tokens/{serial}/lost"): "ra.tokens.manage",
    ("GET", "/api/v1/certificates"): "ra.certs.manage",
    ("GET", "/api/v1/certificates/{serial}"): "ra.certs.manage",
    ("POST", "/api/v1/certificates/{serial}/revoke"): "ra.certs.manage",
    ("POST", "/api/v1/enrolment-codes"): "ra.codes.manage",
    ("GET", "/api/v1/announcements"): LOGIN,
    ("POST", "/api/v1/announcements"): "ra.content.manage",
    ("GET", "/api/v1/forms"): LOGIN,
    ("POST", "/api/v1/forms"): "ra.content.manage",
    ("GET", "/api/v1/ca"): "ca.view",
    ("POST", "/api/v1/crl"): "ca.crl.publish",
    ("POST", "/api/v1/ca/rollover"): "ca.rollover",
    ("GET", "/api/v1/audit"): "audit.view",
    ("POST", "/api/v1/audit/verify"): "audit.verify",
    ("GET", "/api/v1/units/{code}/people"): "unit.people.view",
    ("GET", "/api/v1/units/{code}/dashboard"): "unit.expiry.view",
    ("GET", "/api/v1/units/{code}/campaign"): "unit.expiry.view",
    ("GET", "/api/v1/campaign"): "ra.campaign.view",
    # requests: a unit contact files and sees their unit's (an RA officer anyone's), RA decides
    ("POST", "/api/v1/requests"): "unit.requests.file",
    ("GET", "/api/v1/requests"): "unit.requests.file",
    ("GET", "/api/v1/requests/{request_id}"): "unit.requests.file",
    ("POST", "/api/v1/requests/{request_id}/attachment"): "unit.requests.file",
    ("GET", "/api/v1/requests/{request_id}/attachment"): "unit.requests.file",
    ("POST", "/api/v1/requests/{request_id}/withdraw"): "unit.requests.file",
    ("POST", "/api/v1/requests/{request_id}/approve"): "ra.requests.manage",
    ("POST", "/api/v1/requests/{request_id}/reject"): "ra.requests.manage",
    ("GET", "/api/v1/requests/due-back"): "ra.tokens.manage",
}

# Where the demo puts each role, and what the demo's positions give them.
POSITION_OF = {
    "holder": "clerk",
    "approver": "approver",
    "unit_officer": "it_contact",
    "ra": "ra",
    "ca_admin": "ca_admin",
    "auditor": "auditor",
}
ROLE_NAMES = [*POSITION_OF, None]  # None: no certificate at all

# What must never appear in a refusal, nor in a unit officer's view: another unit's person and
# the people the RA office works on here.
SECRETS = [OTHER_PERSON[1], OTHER_PERSON[2], "matrix@target.example", "Matrix Target"]


def permissions(role: str) -> set[str]:
    return {p for r in POSITIONS[POSITION_OF[role]][1] for p in ROLES[r][1]}


def app_routes(office: Office) -> set[tuple[str, str]]:
    """(method, path) of every route, included routers flattened."""
    found = set()
    for route in iter_route_contexts(office.app.routes):
        if isinstance(route.original_route, Mount):
            assert route.path == "/static", route.path  # files only
            continue
        assert isinstance(route.original_route, APIRoute | Route), route
        assert route.methods and route.path, route
        found |= {(method, route.path) for method in route.methods}
    return found


class Targets:
    """Dedicated people, tokens and certificates, one per state-changing route, so the one
    allowed call of each route has something to act on."""

    def __init__(self, ctx: Context) -> None:
        registry.add_person(ctx, "m-target", "Matrix Target", "DEMO", "matrix@target.example")
        self.serials: dict[str, str] = {}
        issuance = Issuance(ctx)
        for side in ("c", "a"):  # console, API
            for who in ("depart", "revoke"):
                pid = f"m-{who}-{side}"
                registry.add_person(ctx, pid, f"Matrix {who}", "DEMO", f"{pid}@demo.example")
                issue_for(ctx, pid, issuance)
            tokens.register_token(ctx, f"TK-ASSIGN-{side}")
            registry.define_position(ctx, f"m-spare-{side}", "Spare", ["holder"])  # to delete
            for kind in ("RETURN", "LOST"):
                tokens.register_token(ctx, f"TK-{kind}-{side}")
                tokens.assign_token(ctx, f"TK-{kind}-{side}", "m-target")
        # requests filed by the unit contact, one per route that decides or withdraws one
        contact = ctx.acting_as(f"person:{STAFF['unit_officer']}")
        self.requests = {
            (side, action): requests.file_request(
                contact, "position_change", "m-target", {"position_code": "clerk"}
            ).request_id
            for side in ("c", "a")
            for action in ("approve", "reject", "withdraw", "attachment")
        }
        for side in ("c", "a"):
            form = requests.Attachment("f.pdf", PDF)
            requests.attach(contact, self.requests[(side, "attachment")], form)
        with ctx.db.read() as conn:
            for side in ("c", "a"):
                serial = active_personal_serial(conn, f"m-revoke-{side}")
                assert serial is not None
                self.serials[side] = serial

    def url(self, method: str, path: str) -> str:
        side = "a" if path.startswith("/api/") else "c"
        values = {
            "name": "position-change.txt",
            "code": "DEMO",
            "person_id": f"m-depart-{side}" if path.endswith("/depart") else "m-target",
        }
        if "/positions/" in path:
            deleting = method == "DELETE" or path.endswith("/delete")
            values["code"] = (
                f"m-spare-{side}" if deleting else "m-new" if method == "PUT" else "clerk"
            )
        elif "/roles/" in path:
            values["code"] = "m-role" if method == "PUT" else "holder"
        if "{request_id}" in path:
            action = path.rsplit("/", 1)[-1]
            values["request_id"] = self.requests.get(
                (side, action), self.requests[(side, "attachment")]
            )
        if "/tokens/" in path:
            action = path.rsplit("/", 1)[-1].upper()
            values["serial"] = f"TK-{action}-{side}"
        elif "/certificates/" in path:
            values["serial"] = self.serials[side]
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


Sample = Callable[[str], dict[str, Any]]
PDF = b"%PDF-1.4\n% matrix\n"
# A valid body per state-changing route (role-specific values where a second call would clash).
SAMPLES: dict[tuple[str, str], Sample] = {
    ("POST", "/console/units"): lambda r: {"data": {"code": f"MU-{r}", "name": "Matrix unit"}},
    ("POST", "/console/people"): lambda r: {
        "data": {"person_id": f"mp-{r}", "name": "P", "unit_code": "DEMO", "email": "p@e.x"}
    },
    ("POST", "/console/people/{person_id}"): lambda r: {
        "data": {"name": "Matrix Target", "email": "matrix@target.example", "phone": "1"}
    },
    ("POST", "/console/people/{person_id}/position"): lambda r: {
        "data": {"position_code": "approver"}
    },
    ("POST", "/console/tokens"): lambda r: {"data": {"serial": f"TK-NEW-{r}"}},
    ("POST", "/console/tokens/{serial}/assign"): lambda r: {"data": {"person_id": "m-target"}},
    ("POST", "/console/certificates/{serial}/revoke"): lambda r: {
        "data": {"reason": "superseded", "confirm": "yes"}
    },
    ("POST", "/console/tokens/{serial}/lost"): lambda r: {"data": {"confirm": "yes"}},
    ("POST", "/console/people/{person_id}/depart"): lambda r: {"data": {"confirm": "yes"}},
    ("POST", "/console/codes"): lambda r: {"data": {"person_id": "m-target"}},
    ("POST", "/console/content/announcements"): lambda r: {"data": {"title": "T", "body": "B"}},
    ("POST", "/console/content/forms"): lambda r: {
        "data": {"title": "Matrix"},
        "files": {"file": (f"matrix-{r}.pdf", PDF, "application/pdf")},
    },
    ("POST", "/console/ca/crl"): lambda r: {"data": {"issuer": "issuing"}},
    ("POST", "/console/positions"): lambda r: {
        "data": {"code": f"mx-{r}", "name": "Matrix position", "roles": ["holder"]}
    },
    ("POST", "/console/positions/{code}/delete"): lambda r: {"data": {"confirm": "yes"}},
    ("POST", "/console/roles"): lambda r: {
        "data": {"code": f"mr-{r}", "name": "Matrix role", "permissions": ["budget.view"]}
    },
    ("PUT", "/api/v1/positions/{code}"): lambda r: {
        "json": {"name": "Matrix position", "roles": ["holder"]}
    },
    ("PUT", "/api/v1/roles/{code}"): lambda r: {
        "json": {"name": "Matrix role", "permissions": ["budget.view"]}
    },
    ("POST", "/console/campaign/remind"): lambda r: {"data": {"unit": "DEMO"}},
    ("POST", "/console/requests"): lambda r: {
        "data": {"kind": "re_enrolment", "person_id": "m-target"},
        "files": {"form": ("signed.pdf", PDF, "application/pdf")},
    },
    ("POST", "/console/requests/{request_id}/approve"): lambda r: {"data": {"confirm": "yes"}},
    ("POST", "/console/requests/{request_id}/reject"): lambda r: {"data": {"reason": "unsigned"}},
    ("POST", "/api/v1/units"): lambda r: {"json": {"code": f"AU-{r}", "name": "API unit"}},
    ("POST", "/api/v1/people"): lambda r: {
        "json": {"person_id": f"ap-{r}", "name": "P", "unit_code": "DEMO", "email": "p@e.x"}
    },
    ("PATCH", "/api/v1/people/{person_id}"): lambda r: {"json": {"phone": "2"}},
    ("PUT", "/api/v1/people/{person_id}/position"): lambda r: {"json": {"position_code": "clerk"}},
    ("POST", "/api/v1/tokens"): lambda r: {"json": {"serial": f"TK-API-{r}"}},
    ("POST", "/api/v1/tokens/{serial}/assign"): lambda r: {"json": {"person_id": "m-target"}},
    ("POST", "/api/v1/certificates/{serial}/revoke"): lambda r: {"json": {"reason": "superseded"}},
    ("POST", "/api/v1/enrolment-codes"): lambda r: {"json": {"person_id": "m-target"}},
    ("POST", "/api/v1/announcements"): lambda r: {"json": {"title": "T", "body": "B"}},
    ("POST", "/api/v1/forms"): lambda r: {
        "files": {"file": (f"api-{r}.pdf", PDF, "application/pdf")}
    },
    ("POST", "/api/v1/crl"): lambda r: {"json": {"issuer": "issuing"}},
    ("POST", "/api/v1/requests"): lambda r: {
        "json": {"kind": "re_enrolment", "person_id": "m-target"}
    },
    ("POST", "/api/v1/requests/{request_id}/attachment"): lambda r: {
        "files": {"file": ("signed.pdf", PDF, "application/pdf")}
    },
    ("POST", "/api/v1/requests/{request_id}/reject"): lambda r: {"json": {"reason": "unsigned"}},
}


def call(office: Office, targets: Targets, role: str | None, method: str, path: str) -> Any:
    sample = SAMPLES.get((method, path), lambda r: {})(role or "none")
    url = targets.url(method, path)
    if path.startswith("/console/") and method == "POST":
        client = office.page(role)
        if role:
            sample["data"] = {**sample.get("data", {}), "csrf_token": office.csrf(role)}
        return client.request(method, url, follow_redirects=False, **sample)
    client = office.api(role)
    return client.request(method, url, follow_redirects=False, **sample)


def refusal_code(answer: Any) -> str:
    if answer.headers.get("content-type", "").startswith("application/problem+json"):
        return str(answer.json()["code"])
    found = re.search(r'data-code="([^"]+)"', answer.text)
    return found.group(1) if found else ""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_route_is_in_the_matrix(ctx: Context) -> None:
    office = open_office(ctx)
    routes = app_routes(office)
    assert sorted(routes - set(RULES)) == [], "routes nobody decided about"
    assert sorted(set(RULES) - routes) == [], "rules for routes that no longer exist"
    assert set(SAMPLES) <= set(RULES)


def test_every_role_on_every_route(ctx: Context) -> None:
    office = open_office(ctx)
    targets = Targets(ctx)
    routes = sorted(app_routes(office), key=lambda r: (r[1], r[0]))
    problems: list[str] = []
    succeeded: set[tuple[str, str]] = set()
    for method, path in routes:
        rule = RULES[(method, path)]
        for role in ROLE_NAMES:
            seq = office.last_seq()
            answer = call(office, targets, role, method, path)
            status = answer.status_code
            where = f"{role or 'no certificate'} {method} {path} -> {status}"
            if status >= 500:
                problems.append(f"{where}: server error {answer.text[:200]}")
                continue
            if rule in (PUBLIC, OWN_AUTH):
                if rule == PUBLIC and status in (401, 403):
                    problems.append(f"{where}: public route refused")
                continue
            allowed = role is not None and (rule == LOGIN or rule in permissions(role))
            if allowed:
                if status in (401, 403):
                    problems.append(f"{where}: refused ({refusal_code(answer)})")
                elif status < 400:
                    succeeded.add((method, path))
                if rule.startswith("unit.") and OTHER_PERSON[1] in answer.text:
                    problems.append(f"{where}: another unit's person shown")
                continue
            expected = 401 if role is None else 403
            code = refusal_code(answer)
            if status != expected or not code.startswith(("login.", "access.")):
                problems.append(f"{where}: expected {expected}, got {code or answer.text[:80]}")
            leaked = [s for s in SECRETS if s in answer.text]
            if leaked:
                problems.append(f"{where}: leaked {leaked}")
            audit = office.actions_since(seq)
            wanted = [] if role is None else [(f"person:{STAFF[role]}", "access.denied", rule)]
            if audit != wanted:
                problems.append(f"{where}: audit {audit}, expected {wanted}")
    never = sorted(
        f"{m} {p}" for (m, p), rule in RULES.items() if "." in rule and (m, p) not in succeeded
    )
    assert problems == [], "\n".join(problems)
    assert never == [], "no allowed role succeeded (is the sample request valid?)"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_another_units_data_is_refused_to_everyone(ctx: Context) -> None:
    office = open_office(ctx)
    urls = [
        "/api/v1/units/OTHER/people",
        "/api/v1/units/OTHER/dashboard",
        "/api/v1/units/OTHER/campaign",
        "/console/unit?unit=OTHER",
        "/console/unit/campaign?unit=OTHER",
        "/console/unit/campaign/export?unit=OTHER&format=xlsx",
    ]
    for role in ROLE_NAMES:
        for url in urls:
            client = office.page(role) if url.startswith("/console") else office.api(role)
            answer = client.get(url)
            assert answer.status_code == (401 if role is None else 403), (role, url)
            code = refusal_code(answer)
            if role == "unit_officer":
                assert code == "access.other_unit"
            assert not [s for s in SECRETS if s in answer.text], (role, url)
