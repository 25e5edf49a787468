"""The officer console: server-rendered pages, plain HTML forms with the CSRF field."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from certdesk.domain.clock import FixedClock
from certdesk.services import certificates, content, registry, tokens
from certdesk.services.content import MAX_FORM_BYTES
from certdesk.services.context import Context
from certdesk.services.demo import POSITIONS, ROLES
from certdesk.services.expiry import expiry_dashboard
from certdesk.store.tables import enrolment_codes
from certdesk.web.portal import console
from certdesk.web.portal.display import REASON_LABELS
from certdesk.web.portal.i18n import translations
from certdesk.web.portal.render import HOLDER_PAGES, SECTIONS
from officers import OTHER_PERSON, STAFF, Office, open_office, sqlite_only
from portal_client import client_for, issue_for

TEMPLATES = Path(console.__file__).parent / "templates" / "console"


@pytest.fixture
def office(ctx: Context) -> Office:
    return open_office(ctx)


def post(office: Office, role: str, url: str, **fields: str) -> httpx.Response:
    """A form post as a browser sends it: the hidden csrf_token field, no redirect followed."""
    return office.page(role).post(
        url, data={"csrf_token": office.csrf(role), **fields}, follow_redirects=False
    )


def problem_code(html: str) -> str:
    found = re.search(r'data-code="([^"]+)"', html)
    return found.group(1) if found else ""


def test_position_change_shows_new_permissions_at_next_request(office: Office) -> None:
    holder = office.page("holder")
    assert holder.get("/finance/payments").status_code == 403
    seq = office.last_seq()
    answer = post(
        office,
        "ra",
        f"/console/people/{STAFF['holder']}/position",
        position_code="approver",
    )
    assert answer.status_code == 303
    assert answer.headers["location"].endswith("?done=position")
    assert holder.get("/finance/payments").status_code == 200  # same certificate, no reissue
    assert ("person:demo-ra", "person.reposition", "demo-0001") in office.actions_since(seq)
    shown = office.page("ra").get("/console/people/demo-0001?done=position")
    assert "takes effect at the person&#39;s next request" in shown.text
    assert '<dd id="position">Finance approver</dd>' in shown.text  # the name, not the code
    zh = office.page("ra", "zh-CN").get("/console/people")
    assert "财务审批人" in zh.text and "<td>approver</td>" not in zh.text


def test_lost_token_revokes_the_keepers_certificate_at_once(office: Office) -> None:
    ctx = office.ctx
    serial = office.principal("holder").serial
    assert post(office, "ra", "/console/tokens", serial="TK-0001", model="ePass").status_code == 303
    assigned = post(office, "ra", "/console/tokens/TK-0001/assign", person_id="demo-0001")
    assert assigned.status_code == 303
    page = office.page("ra").get("/console/tokens")
    assert "TK-0001" in page.text and "/console/tokens/TK-0001/lost" in page.text
    seq = office.last_seq()
    asked = post(office, "ra", "/console/tokens/TK-0001/lost")
    assert asked.status_code == 200  # the first post only shows what will happen
    assert 'id="to-revoke"' in asked.text and serial in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert certificates.get_certificate(ctx, serial).state.value == "active"
    assert tokens.list_tokens(ctx, keeper_id="demo-0001")[0].state.value == "issued"
    assert office.actions_since(seq) == []
    confirmed = post(office, "ra", "/console/tokens/TK-0001/lost", confirm="yes")
    assert confirmed.status_code == 303
    record = certificates.get_certificate(ctx, serial)
    assert record.state.value == "revoked"
    assert record.revocation_reason == "keyCompromise"
    assert tokens.list_tokens(ctx, keeper_id="demo-0001")[0].state.value == "lost"
    refused = office.page("holder").get("/")
    assert refused.status_code == 401 and problem_code(refused.text) == "login.revoked"
    assert "keyCompromise" in refused.text


def test_unit_officer_sees_only_their_unit(office: Office) -> None:
    it = office.page("unit_officer")
    own = it.get("/console/unit")
    assert own.status_code == 200
    assert "Demo Holder" in own.text and OTHER_PERSON[1] not in own.text
    seq = office.last_seq()
    other = it.get("/console/unit?unit=OTHER")
    assert other.status_code == 403 and problem_code(other.text) == "access.other_unit"
    assert "You may see your own unit only, not OTHER." in other.text
    assert OTHER_PERSON[1] not in other.text and OTHER_PERSON[2] not in other.text
    assert office.actions_since(seq) == [("person:demo-it", "access.denied", "unit.people.view")]
    zh = office.page("unit_officer", "zh-CN").get("/console/unit?unit=OTHER")
    assert "您只能查看本单位的数据" in zh.text
    # the RA office's people pages are not the unit officer's either
    assert it.get("/console/people").status_code == 403


@sqlite_only
def test_csrf_token_missing_or_forged_changes_nothing(office: Office) -> None:
    tokens = {
        "missing": None,
        "empty": "",
        "forged": "0" * 64,
        "other certificate's": office.csrf("ca_admin"),  # valid, but bound to another cert
    }
    before = registry.list_units(office.ctx)
    for case, token in tokens.items():
        fields = {"code": "NEWU", "name": "New Unit"}
        if token is not None:
            fields["csrf_token"] = token
        answer = office.page("ra").post("/console/units", data=fields, follow_redirects=False)
        assert answer.status_code == 403, case
        assert problem_code(answer.text) == "access.csrf", case
    assert registry.list_units(office.ctx) == before
    ok = post(office, "ra", "/console/units", code="NEWU", name="New Unit")
    assert ok.status_code == 303


def upload(office: Office, name: str, data: bytes, role: str = "ra") -> httpx.Response:
    return office.page(role).post(
        "/console/content/forms",
        data={"csrf_token": office.csrf(role), "title": "A form"},
        files={"file": (name, data, "application/octet-stream")},
        follow_redirects=False,
    )


BAD_UPLOADS = [
    ("big.pdf", b"%PDF-1.7\n" + b"0" * MAX_FORM_BYTES, 413, "form.too_large"),
    ("huge.pdf", b"%PDF-1.7\n" + b"0" * (3 * MAX_FORM_BYTES), 413, "form.too_large"),
    ("setup.exe", b"MZ\x90\x00", 415, "form.wrong_type"),
    ("letter.pdf", b"MZ\x90\x00 renamed program", 415, "form.wrong_type"),
    ("letter.txt", b"\xff\xfe\x00binary", 415, "form.wrong_type"),
    ("letter.docx", b"%PDF-1.7 not a zip", 415, "form.wrong_type"),
    ("../etc/passwd.txt", b"text", 400, "input.invalid"),
    ("empty.txt", b"", 400, "input.invalid"),
]


@sqlite_only
def test_bad_uploads_are_refused_and_nothing_is_stored(office: Office) -> None:
    seq = office.last_seq()
    stored = content.list_forms(office.ctx)
    for name, data, status, code in BAD_UPLOADS:
        answer = upload(office, name, data)
        assert (answer.status_code, problem_code(answer.text)) == (status, code), name
        if code != "input.invalid":
            assert "Nothing was stored" in answer.text
    zh = office.page("ra", "zh-CN").post(
        "/console/content/forms",
        data={"csrf_token": office.csrf("ra")},
        files={"file": ("setup.exe", b"MZ", "application/octet-stream")},
    )
    assert "未保存任何内容" in zh.text
    assert content.list_forms(office.ctx) == stored
    assert office.actions_since(seq) == []


def test_form_upload_and_announcement_reach_the_holders(office: Office) -> None:
    pdf = b"%PDF-1.4\n% revocation letter\n"
    answer = upload(office, "revocation-letter.pdf", pdf)
    assert answer.status_code == 303
    published = post(
        office, "ra", "/console/content/announcements", title="Renewal season", body="Renew now."
    )
    assert published.status_code == 303
    holder = office.page("holder")
    assert "revocation-letter.pdf" in holder.get("/forms").text
    assert holder.get("/forms/revocation-letter.pdf").content == pdf
    for missing in ("nothing.pdf", "%00.pdf"):
        assert problem_code(holder.get(f"/forms/{missing}").text) == "form.not_found"
    assert "Renewal season" in holder.get("/announcements").text
    assert office.page("holder").get("/console/content").status_code == 403


def test_register_edit_and_depart_a_person(office: Office) -> None:
    ra = office.page("ra")
    assert 'name="unit_code"' in ra.get("/console/people/new").text
    made = post(
        office,
        "ra",
        "/console/people",
        person_id="p-100",
        name="Li Si",
        unit_code="DEMO",
        email="li@demo.example",
        position_code="clerk",
    )
    assert (
        made.status_code == 303 and made.headers["location"] == "/console/people/p-100?done=person"
    )
    der = issue_for(office.ctx, "p-100")
    found = ra.get("/console/people?q=li%20si")
    assert "p-100" in found.text and "demo-0002" not in found.text
    edited = post(
        office, "ra", "/console/people/p-100", name="Li Si", email="lisi@demo.example", phone="1"
    )
    assert edited.status_code == 303
    assert registry.find_person(office.ctx, "p-100").email == "lisi@demo.example"
    asked = post(office, "ra", "/console/people/p-100/depart")
    assert asked.status_code == 200 and "Mark the person departed?" in asked.text
    (serial,) = re.findall(r'<li class="mono nowrap">([0-9a-f]+)</li>', asked.text)
    assert certificates.get_certificate(office.ctx, serial).state.value == "active"
    assert registry.find_person(office.ctx, "p-100").state.value == "active"
    assert post(office, "ra", "/console/people/p-100/depart", confirm="yes").status_code == 303
    shown = ra.get("/console/people/p-100")
    assert '<dd id="state">Departed</dd>' in shown.text
    (cert,) = certificates.list_certificates(office.ctx, person_id="p-100")
    assert (cert.state.value, cert.revocation_reason) == ("revoked", "affiliationChanged")
    again = post(office, "ra", "/console/people/p-100/depart", confirm="yes")
    assert problem_code(again.text) == "person.already_departed"
    gone = client_for(office.app, der).get("/")  # refused as departed, not only as revoked
    assert gone.status_code == 403 and problem_code(gone.text) == "login.departed"


def test_search_show_and_revoke_a_certificate(office: Office) -> None:
    ra = office.page("ra")
    serial = office.principal("approver").serial
    listed = ra.get("/console/certificates?q=demo-0002&state=active")
    assert serial in listed.text
    shown = ra.get(f"/console/certificates/{serial}")
    assert 'name="reason"' in shown.text and "keyCompromise" in shown.text
    bad = post(office, "ra", f"/console/certificates/{serial}/revoke", reason="cACompromise")
    assert problem_code(bad.text) == "revocation.bad_reason"
    asked = post(
        office, "ra", f"/console/certificates/{serial}/revoke", reason="privilegeWithdrawn"
    )
    assert asked.status_code == 200 and 'id="reason">privilegeWithdrawn<' not in asked.text
    assert "Privilege withdrawn" in asked.text and serial in asked.text
    assert "Demo Approver" in asked.text and "serialNumber=demo-0002" in asked.text
    assert certificates.get_certificate(office.ctx, serial).state.value == "active"
    zh = office.page("ra", "zh-CN").post(
        f"/console/certificates/{serial}/revoke",
        data={"csrf_token": office.csrf("ra"), "reason": "privilegeWithdrawn"},
    )
    assert "权限撤销" in zh.text and "确认吊销" in zh.text
    forged = office.page("ra").post(
        f"/console/certificates/{serial}/revoke",
        data={"reason": "privilegeWithdrawn", "confirm": "yes"},
        follow_redirects=False,
    )
    assert problem_code(forged.text) == "access.csrf"  # the Confirm button needs CSRF too
    assert certificates.get_certificate(office.ctx, serial).state.value == "active"
    done = post(
        office,
        "ra",
        f"/console/certificates/{serial}/revoke",
        reason="privilegeWithdrawn",
        confirm="yes",
    )
    assert done.status_code == 303
    assert (
        certificates.get_certificate(office.ctx, serial).revocation_reason == "privilegeWithdrawn"
    )
    issuing = certificates.list_certificates(office.ctx, search="Issuing CA")[0]
    assert issuing.profile == "issuing_ca"
    refused = post(
        office, "ra", f"/console/certificates/{issuing.serial}/revoke", reason="unspecified"
    )
    assert problem_code(refused.text) == "cert.ca_certificate"  # refused at the first step
    shown = ra.get(f"/console/certificates/{serial}?lang=zh-CN").text
    assert '<span id="revocation-reason">权限撤销' in shown
    assert "2.5.4.5=" not in shown and "serialNumber=demo-0002" in shown


@sqlite_only
def test_enrolment_code_is_shown_once_and_stored_as_a_hash(office: Office) -> None:
    assert 'value="demo-0001"' in office.page("ra").get("/console/codes?person=demo-0001").text
    answer = post(office, "ra", "/console/codes", person_id="demo-0001", hours="2")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    code = re.search(r'id="code">([^<]+)<', answer.text).group(1)  # type: ignore[union-attr]
    with office.ctx.db.read() as conn:
        stored = conn.execute(select(enrolment_codes.c.code_hash)).scalars().all()
    assert stored == [hashlib.sha256(code.encode()).hexdigest()]
    assert code not in office.page("ra").get("/console/audit").text


def test_ca_admin_publishes_a_crl_and_auditor_verifies_the_chain(office: Office) -> None:
    ca = office.page("ca_admin")
    before = ca.get("/console/ca").text
    number = int(re.search(r'id="crl-issuing">(\d+)<', before).group(1))  # type: ignore[union-attr]
    assert post(office, "ca_admin", "/console/ca/crl", issuer="issuing").status_code == 303
    after = ca.get("/console/ca?done=crl").text
    assert f'id="crl-issuing">{number + 1}<' in after and "CRL published." in after
    auditor = office.page("auditor")
    listing = auditor.get("/console/audit")
    assert "crl.publish" in listing.text and "Verify the chain" in listing.text
    verified = post(office, "auditor", "/console/audit/verify")
    assert "is intact" in verified.text
    # the RA office reads the log but does not verify it
    assert "Verify the chain" not in office.page("ra").get("/console/audit").text
    assert problem_code(post(office, "ra", "/console/audit/verify").text) == "access.denied"
    older = auditor.get("/console/audit?before=3")
    assert older.status_code == 200 and "<td>3</td>" not in older.text


def test_expiry_dashboard_groups_the_unit_by_the_clock(office: Office) -> None:
    ctx, clock = office.ctx, office.ctx.clock
    assert isinstance(clock, FixedClock)
    start = clock.now()
    for pid, issued_after in (("dash-window", 10), ("dash-soon", 60), ("dash-later", 100)):
        registry.add_person(ctx, pid, pid.title(), "DEMO", f"{pid}@demo.example")
        clock.current = start + dt.timedelta(days=issued_after)
        issue_for(ctx, pid)
    registry.add_person(ctx, "dash-none", "Dash None", "DEMO", "none@demo.example")
    clock.current = start + dt.timedelta(days=370)  # every certificate of day 0 has expired
    board = expiry_dashboard(ctx, "DEMO")
    assert [e.person_id for e in board.in_window] == ["dash-window"]
    assert [e.person_id for e in board.upcoming] == ["dash-soon"]
    assert board.valid == 1
    assert "demo-0001" in [e.person_id for e in board.expired]
    assert "dash-none" in [e.person_id for e in board.without_certificate]
    assert "other-001" not in str(board)
    page = office.page("unit_officer").get("/console/unit")
    assert page.status_code == 401  # the officer's own certificate has expired too
    clock.current = start
    shown = office.page("unit_officer").get("/console/unit").text
    assert 'id="in-window">In the renewal window: renew now (0)' in shown


def test_console_pages_have_every_string_in_chinese() -> None:
    zh = translations("zh-CN").gettext
    strings = set(console.DONE.values()) | {label for _, label, _ in SECTIONS + HOLDER_PAGES}
    strings |= set(REASON_LABELS.values()) | {"My certificate", "Office console"}
    strings |= {name for name, _ in ROLES.values()} | {name for name, _ in POSITIONS.values()}
    for template in TEMPLATES.glob("*.html"):
        strings |= set(re.findall(r'_\("([^"]+)"\)', template.read_text()))
        strings |= set(re.findall(r"_\('([^']+)'\)", template.read_text()))
    states = ["active", "departed", "in_stock", "issued", "returned", "lost", "revoked"]
    strings |= set(states) | {"keyCompromise", "affiliationChanged", "privilegeWithdrawn"}
    missing = sorted(s for s in strings if zh(s) == s)
    assert missing == []


@sqlite_only
def test_console_page_in_chinese_on_a_phone(office: Office) -> None:
    page = office.page("ra", "zh-CN").get("/console/tokens")
    assert page.status_code == 200
    assert "USB Key 入库" in page.text and 'name="viewport"' in page.text
    assert "<script" not in page.text and "style=" not in page.text


@sqlite_only
def test_people_and_certificates_are_paged_and_exported_as_csv(office: Office) -> None:
    ctx = office.ctx
    for n in range(60):
        registry.add_person(ctx, f"page-{n:03d}", f"Page {n}", "DEMO", f"p{n}@demo.example")
    registry.add_person(ctx, "page-zh", "李四", "DEMO", "lisi@demo.example", position_code="clerk")
    registry.add_person(ctx, "page-f", "=HYPERLINK(1)", "DEMO", "f@demo.example")
    ra = office.page("ra")
    ids = re.compile(r'<td class="mono"><a href="/console/people/([^"]+)">')
    first = ra.get("/console/people?q=page-")
    assert len(ids.findall(first.text)) == 50
    nxt = re.search(r'id="next" href="([^"]+)"', first.text)
    assert nxt is not None and "offset=50" in nxt.group(1) and "q=page-" in nxt.group(1)
    second = ra.get(nxt.group(1).replace("&amp;", "&"))
    assert 'id="next"' not in second.text and 'id="previous"' in second.text
    shown = ids.findall(first.text) + ids.findall(second.text)
    assert len(shown) == len(set(shown)) == 62  # every one once, in a stable order
    assert shown == sorted(shown)

    exported = ra.get("/console/people.csv?q=page-")
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert exported.headers["content-disposition"] == 'attachment; filename="people.csv"'
    assert exported.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads 李四
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["person_id", "name"] and len(rows) == 63
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id["page-zh"][1] == "李四" and by_id["page-zh"][4] == "Finance clerk"
    assert by_id["page-f"][1] == "'=HYPERLINK(1)"  # not run as a formula
    assert 'href="/console/people.csv?q=page-"' in first.text

    serial = office.principal("approver").serial
    certs = ra.get("/console/certificates.csv?q=demo-0002")
    assert certs.headers["content-disposition"] == 'attachment; filename="certificates.csv"'
    (header, row) = list(csv.reader(io.StringIO(certs.content.decode("utf-8-sig"))))
    assert header[0] == "serial" and row[0] == serial
    assert "serialNumber=demo-0002" in row[2] and row[4] == "active"
    assert office.page("holder").get("/console/people.csv").status_code == 403


def test_audit_log_filters_and_shows_changes_as_fields(office: Office) -> None:
    post(office, "ra", f"/console/people/{STAFF['holder']}/position", position_code="approver")
    auditor = office.page("auditor")
    page = auditor.get("/console/audit?action=person.reposition&actor=demo-ra").text
    assert '<option value="person.reposition" selected>' in page
    assert '<li><span class="mono">position</span>: clerk → approver</li>' in page
    assert "{&#34;" not in page and '{"' not in page  # no raw JSON
    assert "crl.publish" not in page.split("<tbody>")[1]  # the filter holds
    other = auditor.get("/console/audit?actor=demo-audit").text.split("<tbody>")[1]
    assert "person.reposition" not in other


@sqlite_only
def test_codes_page_lists_codes_given_but_never_the_code(office: Office) -> None:
    ra = office.page("ra")
    empty = ra.get("/console/codes").text
    assert "No codes yet." in empty and "valid for 72 hours" in empty
    answer = post(office, "ra", "/console/codes", person_id="demo-0001", hours="2")
    code = re.search(r'id="code">([^<]+)<', answer.text).group(1)  # type: ignore[union-attr]
    listing = ra.get("/console/codes").text
    table = listing.split('id="codes"')[1]
    assert "demo-0001" in table and "Not used yet" in table
    assert code not in listing and hashlib.sha256(code.encode()).hexdigest() not in listing
    zh = office.page("ra", "zh-CN").get("/console/codes").text
    assert "尚未使用" in zh and "72 小时" in zh
    person = ra.get("/console/people/demo-0001").text
    assert 'id="issue" class="button" href="/console/codes?person=demo-0001"' in person


@sqlite_only
def test_home_page_names_roles_and_position_not_their_ids(office: Office) -> None:
    en = office.page("holder").get("/").text
    assert '<dd id="roles">Certificate holder, Finance clerk</dd>' in en
    zh = office.page("holder", "zh-CN").get("/").text
    assert '<dd id="roles">证书持有人、财务经办人</dd>' in zh and "财务经办人" in zh
    assert "finance_clerk" not in zh and "holder," not in zh
