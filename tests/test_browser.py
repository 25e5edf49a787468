"""The portal in a real browser: Playwright driving Debian's chromium against `certdesk serve`,
the client certificate offered by the browser as a holder's would be.

A holder logs in and sees their validity; an RA officer changes a person's position and that
person's next page shows the new permissions; a superseded certificate gets the "remove the old
certificate" page; no certificate gets the "insert your USB key" page. With
CERTDESK_SCREENSHOTS=1 the main pages are saved under docs/screenshots/ in en and zh-CN
(`make test` leaves those tracked files alone). With CI=true a missing chromium fails.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from certdesk.domain.clock import FixedClock
from certdesk.services import certificates, registry, tokens
from certdesk.services.context import Context
from certdesk.services.demo import DEMO_PASSPHRASE, POSITIONS
from certdesk.services.issuance import Issuance
from certdesk.services.renewal import Renewals
from certdesk.services.renewal_install import Confirmed, Renewed
from certdesk.services.revocation import revoke
from live_portal import LivePortal, live_portal
from test_renewal import Holder

IN_CI = os.environ.get("CI", "").lower() == "true"
try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - a dev dependency; required in CI
    if IN_CI:
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("CERTDESK_SCREENSHOTS", "") == "1"
SHOT_DIR = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
SHOT_HEIGHT = 1400
LANGS = ("en", "zh-CN")
CLERK = "demo-0001"  # the demo clerk: no certificate until this module enrols one
P12_PASSPHRASE = "browser-passphrase"
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    with live_portal(tmp_path_factory.mktemp("browser")) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield launched
        launched.close()


@dataclass
class Visitor:
    """One browser profile: a client certificate (or none) offered to the portal's origin."""

    context: BrowserContext
    page: Page

    def text(self, selector: str = "main") -> str:
        return self.page.inner_text(selector)

    def shot(self, name: str, lang: str) -> None:
        """The page down to its end, or its first SHOT_HEIGHT pixels (long listings)."""
        if not SCREENSHOTS:
            return
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        width, height = self.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        self.page.screenshot(
            path=str(SHOT_DIR / f"{name}.{lang}.png"),
            full_page=True,
            clip={"x": 0, "y": 0, "width": width, "height": min(height, SHOT_HEIGHT)},
        )


@pytest.fixture(scope="module")
def visit(portal: LivePortal, browser: Browser) -> Iterator[Any]:
    """visit(certificate) → a Visitor; certificate is a .p12 path, (cert, key) paths or None."""
    opened: list[BrowserContext] = []

    def make(
        certificate: Path | tuple[Path, Path] | None,
        passphrase: str = DEMO_PASSPHRASE,
        viewport: tuple[int, int] = (1000, 720),
        javascript: bool = True,
    ) -> Visitor:
        offered: list[Any] = []
        if isinstance(certificate, Path):
            offered = [{"origin": portal.base, "pfxPath": certificate, "passphrase": passphrase}]
        elif certificate is not None:
            cert, key = certificate
            offered = [{"origin": portal.base, "certPath": cert, "keyPath": key}]
        context = browser.new_context(
            base_url=portal.base,
            client_certificates=offered,
            ignore_https_errors=True,  # the notes: Playwright's own proxy checks the server
            viewport={"width": viewport[0], "height": viewport[1]},
            locale="en-US",
            java_script_enabled=javascript,
        )
        opened.append(context)
        return Visitor(context, context.new_page())

    yield make
    for context in opened:
        context.close()


def go(visitor: Visitor, path: str, lang: str = "en") -> int:
    sep = "&" if "?" in path else "?"
    response = visitor.page.goto(f"{path}{sep}lang={lang}")
    assert response is not None
    return response.status


@pytest.fixture(scope="module")
def clerk(portal: LivePortal) -> tuple[Path, x509.Certificate]:
    """demo-0001 enrolled with the officer's command (PKCS#12, as for a browser)."""
    target = portal.home / "clerk.p12"
    portal.certdesk("enroll", CLERK, "--p12", str(target), "--p12-passphrase", P12_PASSPHRASE)
    loaded = pkcs12.load_pkcs12(target.read_bytes(), P12_PASSPHRASE.encode())
    assert loaded.cert is not None
    return target, loaded.cert.certificate


def test_holder_logs_in_and_sees_validity(visit: Any, clerk: tuple[Path, x509.Certificate]) -> None:
    p12, cert = clerk
    holder = visit(p12, P12_PASSPHRASE)
    serial = format(cert.serial_number, "x")
    until = f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    days = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    assert go(holder, "/") == 200
    assert holder.text("h1") == "Welcome, Demo Holder"
    facts = holder.text("dl.facts")
    assert "Valid until" in facts and until in facts and serial in facts
    assert "Finance clerk" in facts
    assert int(holder.text("#days-left")) in (days, days - 1)  # a day may turn meanwhile
    assert go(holder, "/", "zh-CN") == 200
    assert holder.text("h1") == "欢迎您，Demo Holder"
    assert "到期时间" in holder.text("dl.facts") and until in holder.text("dl.facts")


def change_position(officer: Visitor, person_id: str, position: str) -> None:
    """The RA officer changes the position on the console's person page (its form, its CSRF
    token)."""
    assert go(officer, f"/console/people/{person_id}") == 200
    form = officer.page.locator(f"form[action='/console/people/{person_id}/position']")
    form.locator("select[name=position_code]").select_option(position)
    with officer.page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert officer.text("#position") == POSITIONS[position][0]  # the name, not the code
    assert "takes effect at the person's next request" in officer.text()


def test_position_change_shows_at_the_next_page(
    portal: LivePortal, visit: Any, clerk: tuple[Path, x509.Certificate]
) -> None:
    holder = visit(clerk[0], P12_PASSPHRASE)
    officer = visit(portal.demo_p12("demo-ra"))
    assert go(holder, "/finance/payments") == 403
    assert "payment.approve" in holder.text()
    assert "Payments" not in holder.text("nav.main")
    change_position(officer, CLERK, "approver")
    try:
        assert go(holder, "/finance/payments") == 200  # same certificate, next request
        assert "Payments" in holder.text("nav.main")
        assert "PAY-2026-0142" in holder.text()
        go(holder, "/")
        assert "Finance approver" in holder.text("dl.facts")
    finally:
        change_position(officer, CLERK, "clerk")
    assert go(holder, "/finance/payments") == 403


def renewed_away(portal: LivePortal, person_id: str) -> tuple[Path, Path, str, str]:
    """A certificate superseded by its renewal (done 340 days ahead, in its window)."""
    issued, key, cert_path, key_path = portal.issue_pem(person_id, portal.home / "certs")
    later = Context(
        portal.ctx.config, portal.ctx.db, FixedClock(portal.ctx.clock.now() + 340 * DAY), "test"
    )
    holder = Holder(Renewals(later, Issuance(later)), key, issued.serial)
    new_key = ec.generate_private_key(ec.SECP256R1())

    def renew_and_confirm() -> tuple[Renewed, Confirmed]:
        renewed = holder.renew(new_key)
        return renewed, holder.confirm(renewed.serial, new_key)

    with ThreadPoolExecutor(1) as pool:  # this thread runs Playwright's event loop
        renewed, confirmed = pool.submit(renew_and_confirm).result()
    assert confirmed.superseded == issued.serial
    return cert_path, key_path, issued.serial, renewed.serial


def test_superseded_certificate_gets_remove_the_old_certificate(
    portal: LivePortal, visit: Any
) -> None:
    registry.add_person(portal.ctx, "p-renewed", "Wang Wu", "DEMO", "wang@demo.example",
                        position_code="clerk")  # fmt: skip
    cert, key, old, new = renewed_away(portal, "p-renewed")
    browser = visit((cert, key))
    assert go(browser, "/") == 401
    assert browser.page.get_attribute("p.problem", "data-code") == "login.superseded"
    assert browser.text("h2") == "Remove the old certificate"
    assert old in browser.text() and new in browser.text()
    assert "Wang Wu" not in browser.text("header")  # never treated as logged in
    assert go(browser, "/", "zh-CN") == 401
    assert browser.text("h2") == "删除旧证书" and "旧证书" in browser.text("p.problem")
    assert go(browser, "/finance/budget") == 401  # no page of the portal opens with it


def test_no_certificate_gets_insert_your_usb_key(visit: Any) -> None:
    browser = visit(None)
    assert go(browser, "/") == 401
    assert browser.page.get_attribute("p.problem", "data-code") == "login.no_certificate"
    assert "Insert your USB key." in browser.text("ol")
    assert go(browser, "/", "zh-CN") == 401
    assert "插入您的 USB Key。" in browser.text("ol")


def test_destructive_actions_ask_first_without_javascript(portal: LivePortal, visit: Any) -> None:
    """Revoke, report lost and depart in a browser with JavaScript off: the button shows what
    will happen, nothing changes until Confirm (screenshots of the confirmation pages)."""
    officer = visit(portal.demo_p12("demo-ra"), javascript=False)
    registry.add_person(portal.ctx, "p-leaving", "Zhou Jiu", "DEMO", "zhou@demo.example",
                        position_code="clerk")  # fmt: skip
    issued = portal.issue_pem("p-leaving", portal.home / "certs")[0]
    tokens.register_token(portal.ctx, "TK-LEAVING")
    tokens.assign_token(portal.ctx, "TK-LEAVING", "p-leaving")
    for lang in LANGS:
        assert go(officer, f"/console/certificates/{issued.serial}", lang) == 200
        form = officer.page.locator(f"form[action='/console/certificates/{issued.serial}/revoke']")
        form.locator("select[name=reason]").select_option("keyCompromise")
        with officer.page.expect_navigation():
            form.locator("button[type=submit]").click()
        facts = officer.text("#confirm-facts")
        assert issued.serial in facts and "Zhou Jiu" in facts
        assert ("Key compromise" if lang == "en" else "密钥泄露") in facts
        assert "serialNumber=p-leaving" in facts and "2.5.4.5" not in facts
        officer.shot("console-confirm-revoke", lang)
        assert go(officer, "/console/tokens", lang) == 200
        lost = officer.page.locator("form[action='/console/tokens/TK-LEAVING/lost']")
        with officer.page.expect_navigation():
            lost.locator("button[type=submit]").click()
        assert issued.serial in officer.text("#to-revoke")
        officer.shot("console-confirm-lost", lang)
        assert go(officer, "/console/people/p-leaving", lang) == 200
        with officer.page.expect_navigation():
            officer.page.click("form[action='/console/people/p-leaving/depart'] button")
        assert issued.serial in officer.text("#to-revoke")
        assert "TK-LEAVING" in officer.text("#to-return")
        officer.shot("console-confirm-depart", lang)
    assert certificates.get_certificate(portal.ctx, issued.serial).state.value == "active"
    with officer.page.expect_navigation():
        officer.page.click("form[action='/console/people/p-leaving/depart'] button.danger")
    assert registry.find_person(portal.ctx, "p-leaving").state.value == "departed"
    record = certificates.get_certificate(portal.ctx, issued.serial)
    assert (record.state.value, record.revocation_reason) == ("revoked", "affiliationChanged")


def test_navigation_groups_the_holders_and_the_offices_pages(
    portal: LivePortal, visit: Any, clerk: tuple[Path, x509.Certificate]
) -> None:
    holder = visit(clerk[0], P12_PASSPHRASE)
    go(holder, "/")
    groups = holder.page.locator("nav.main .navtitle").all_inner_texts()
    assert groups == ["My certificate"]
    officer = visit(portal.demo_p12("demo-ra"))
    go(officer, "/console/people")
    assert officer.page.locator("nav.main .navtitle").all_inner_texts() == [
        "My certificate",
        "Office console",
    ]
    office = officer.page.locator("nav.main .navgroup").nth(1)
    assert "People" in office.inner_text() and "Home" not in office.inner_text()
    assert office.locator("a[aria-current=page]").inner_text() == "People"
    go(officer, "/console/people", "zh-CN")
    titles = officer.page.locator("nav.main .navtitle").all_inner_texts()
    assert titles == ["我的证书", "业务管理"]


def test_serials_and_dates_do_not_wrap_on_a_phone(portal: LivePortal, visit: Any) -> None:
    it = visit(portal.demo_p12("demo-it"), viewport=(390, 844))
    assert go(it, "/console/unit") == 200
    cells = it.page.locator("table td.mono, table td.date")
    assert cells.count() > 0
    for i in range(cells.count()):
        cell = cells.nth(i)
        lines = cell.evaluate(  # the distinct tops of the text's line boxes
            "c => { const r = document.createRange(); r.selectNodeContents(c);"
            " return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }"
        )
        assert lines <= 1, (cell.inner_text(), lines)


# -- screenshots of the main pages (files only with CERTDESK_SCREENSHOTS=1) -----------------

HOLDER_PAGES = [
    ("home", "/"),
    ("announcements", "/announcements"),
    ("forms", "/forms"),
    ("support", "/support"),
    ("finance-budget", "/finance/budget"),
    ("finance-payments", "/finance/payments"),
]
# Console pages by officer.
CONSOLE_PAGES = {
    "demo-ra": [
        ("console-people", "/console/people"),
        ("console-person", f"/console/people/{CLERK}"),
        ("console-person-new", "/console/people/new"),
        ("console-units", "/console/units"),
        ("console-positions", "/console/positions"),
        ("console-position", "/console/positions/clerk"),
        ("console-role", "/console/roles/ra_officer"),
        ("console-tokens", "/console/tokens"),
        ("console-certificates", "/console/certificates"),
        ("console-codes", "/console/codes"),
        ("console-content", "/console/content"),
        ("console-audit", "/console/audit"),
    ],
    "demo-it": [("console-unit", "/console/unit")],
    "demo-ca": [("console-ca", "/console/ca")],
}


def test_main_pages_in_both_languages(portal: LivePortal, visit: Any) -> None:
    approver = visit(portal.demo_p12("demo-0002"))
    clerkish = visit(portal.demo_p12("demo-it"))  # a unit officer: no payment.approve
    nobody = visit(None)
    phone = visit(portal.demo_p12("demo-0002"), viewport=(390, 844))
    registry.add_person(portal.ctx, "p-revoked", "Zhao Liu", "DEMO", "zhao@demo.example",
                        position_code="clerk")  # fmt: skip
    issued, _key, revoked, revoked_key = portal.issue_pem("p-revoked", portal.home / "certs")
    revoke(portal.ctx.acting_as("person:demo-ra"), issued.serial, "keyCompromise")
    registry.add_person(portal.ctx, "p-superseded", "Sun Qi", "DEMO", "sun@demo.example",
                        position_code="clerk")  # fmt: skip
    superseded = visit(renewed_away(portal, "p-superseded")[:2])
    registry.add_person(portal.ctx, "p-expired", "Qian Ba", "DEMO", "qian@demo.example",
                        position_code="clerk")  # fmt: skip
    year_ago = portal.ctx.clock.now() - 400 * DAY
    issuance = Issuance(Context(portal.ctx.config, portal.ctx.db, FixedClock(year_ago), "test"))
    expired = visit(portal.issue_pem("p-expired", portal.home / "certs", issuance)[2:])
    revoked_browser = visit((revoked, revoked_key))
    for lang in LANGS:
        for name, path in HOLDER_PAGES:
            assert go(approver, path, lang) == 200, path
            assert approver.page.get_attribute("html", "lang") == lang
            approver.shot(name, lang)
        assert go(phone, "/", lang) == 200
        phone.shot("home-phone", lang)
        assert go(clerkish, "/finance/payments", lang) == 403
        clerkish.shot("problem-not-allowed", lang)
        assert go(nobody, "/", lang) == 401
        nobody.shot("problem-no-certificate", lang)
        assert go(superseded, "/", lang) == 401
        superseded.shot("problem-superseded", lang)
        assert go(revoked_browser, "/", lang) == 401
        assert revoked_browser.page.get_attribute("p.problem", "data-code") == "login.revoked"
        revoked_browser.shot("problem-revoked", lang)
        assert go(expired, "/", lang) == 401
        assert expired.page.get_attribute("p.problem", "data-code") == "login.expired"
        expired.shot("problem-expired", lang)
        assert go(nobody, "/status", lang) == 200
        nobody.shot("status", lang)
    for person, pages in CONSOLE_PAGES.items():
        officer = visit(portal.demo_p12(person))
        for name, path in pages:
            for lang in LANGS:
                assert go(officer, path, lang) == 200, (person, path)
                officer.shot(name, lang)
    auditor = visit(portal.demo_p12("demo-audit"))
    for lang in LANGS:
        assert go(auditor, "/console/audit", lang) == 200
        with auditor.page.expect_navigation():
            auditor.page.click("form[action='/console/audit/verify'] button[type=submit]")
        assert auditor.page.locator("#verify-result.notice").count() == 1
        auditor.shot("console-audit-verified", lang)


def test_campaign_chart_is_drawn_without_javascript(portal: LivePortal, visit: Any) -> None:
    """The RA officer's campaign page: the table and the server-drawn SVG bars, JS off."""
    officer = visit(portal.demo_p12("demo-ra"), javascript=False)
    today = dt.datetime.now(dt.UTC).date()
    period = f"start={today + 330 * DAY}&end={today + 400 * DAY}"  # the demo's certificates end
    for lang in LANGS:
        assert go(officer, f"/console/campaign?{period}", lang) == 200
        assert officer.page.locator("svg.campaign-chart rect").count() > 4  # bars and legend
        assert "DEMO" in officer.text("#campaign-units")
        officer.shot("console-campaign", lang)


# -- the office's requests, start to end ------------------------------------------------------

PDF = b"%PDF-1.4\n% signed revocation letter\n%%EOF\n"


def file_request(contact: Visitor, kind: str, person_id: str, **fields: str) -> str:
    """The unit contact files on the requests page (its multipart form); → the request id."""
    assert go(contact, "/console/requests") == 200
    form = contact.page.locator("form[enctype='multipart/form-data']")
    form.locator("select[name=kind]").select_option(kind)
    form.locator("input[name=person_id]").fill(person_id)
    for name, value in fields.items():
        if name == "form":
            form.locator("input[name=form]").set_input_files(value)
        else:
            form.locator(f"[name={name}]").fill(value)
    with contact.page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert "Request filed." in contact.text()
    return contact.page.url.split("/console/requests/")[1].split("?")[0]


def approve(officer: Visitor, request_id: str, shot: str = "") -> None:
    """Approve, then Confirm on the page that says what will happen (screenshots of it)."""
    for lang in LANGS if shot else ("en",):
        assert go(officer, f"/console/requests/{request_id}", lang) == 200
        with officer.page.expect_navigation():
            officer.page.click(f"form[action='/console/requests/{request_id}/approve'] button")
        assert officer.page.locator("#confirm-facts").count() == 1
        if shot:
            officer.shot(shot, lang)
    with officer.page.expect_navigation():
        officer.page.click("button.danger")
    assert officer.text("#request-state") in ("Carried out", "已办结")


def crl_text(portal: LivePortal) -> str:
    """The issuing CA's CRL as served at /pki/, read by `openssl crl -text`."""
    portal.certdesk("crl", "publish", "--issuer", "issuing")
    served = portal.home / "served.crl"
    fetched = subprocess.run(
        ["curl", "-sSf", "--cacert", str(portal.root_pem), "-o", str(served),
         f"{portal.base}/pki/issuing.crl"],
        capture_output=True, check=True,
    )  # fmt: skip
    assert fetched.returncode == 0
    shown = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(served), "-noout", "-text"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return shown.stdout


def test_office_requests_from_filing_to_the_token_back(portal: LivePortal, visit: Any) -> None:
    """The unit contact files a departure with the signed PDF, the RA officer approves it: the
    person's next request is refused as departed, the CRL lists the serial (affiliationChanged),
    the token is due back until its return is recorded. A position change approved shows at
    the holder's next page with the same certificate. Nobody approves their own request."""
    for person_id, name in (("p-leaver", "Wu Shi"), ("p-mover", "Zheng Yi")):
        registry.add_person(portal.ctx, person_id, name, "DEMO", f"{person_id}@demo.example",
                            position_code="clerk")  # fmt: skip
    leaving, _key, leaver_cert, leaver_key = portal.issue_pem("p-leaver", portal.home / "certs")
    mover_cert, mover_key = portal.issue_pem("p-mover", portal.home / "certs")[2:]
    tokens.register_token(portal.ctx, "TK-DUE")
    tokens.assign_token(portal.ctx, "TK-DUE", "p-leaver")
    letter = portal.home / "revocation-letter.pdf"
    letter.write_bytes(PDF)
    contact = visit(portal.demo_p12("demo-it"))
    officer = visit(portal.demo_p12("demo-ra"), javascript=False)
    leaver, mover = visit((leaver_cert, leaver_key)), visit((mover_cert, mover_key))
    assert go(leaver, "/") == 200

    rid = file_request(contact, "departure", "p-leaver", remark="left on 1 Dec", form=str(letter))
    assert "revocation-letter.pdf" in contact.text("#request-facts")
    for lang in LANGS:
        assert go(contact, "/console/requests", lang) == 200
        assert rid in contact.text("#requests")
        contact.shot("console-requests", lang)
    approve(officer, rid, shot="console-confirm-request")
    for lang in LANGS:
        assert go(officer, f"/console/requests/{rid}", lang) == 200
        officer.shot("console-request", lang)
    assert leaving.serial in officer.text("#request-facts")

    assert go(leaver, "/") == 403
    assert leaver.page.get_attribute("p.problem", "data-code") == "login.departed"
    crl = crl_text(portal)
    # openssl prints whole bytes: a serial with an odd number of hex digits gets a leading 0
    listed = leaving.serial.upper().zfill(len(leaving.serial) + len(leaving.serial) % 2)
    entry = crl.split(f"Serial Number: {listed}")[1].split("Serial Number:")[0]
    assert "Affiliation Changed" in entry, crl

    for lang in LANGS:
        assert go(officer, "/console/requests/due-back", lang) == 200
        assert "TK-DUE" in officer.text("#due-back") and "p-leaver" in officer.text("#due-back")
        officer.shot("console-due-back", lang)
    assert go(officer, "/console/tokens") == 200
    with officer.page.expect_navigation():
        officer.page.click("form[action='/console/tokens/TK-DUE/return'] button")
    assert go(officer, "/console/requests/due-back") == 200
    assert "TK-DUE" not in officer.text("#due-back")

    assert go(mover, "/finance/payments") == 403
    moved = file_request(contact, "position_change", "p-mover", position_code="approver")
    approve(officer, moved)
    assert go(mover, "/finance/payments") == 200  # the same certificate, the next page
    assert "Payments" in mover.text("nav.main")

    own = file_request(officer, "position_change", "p-mover", position_code="clerk")
    assert go(officer, f"/console/requests/{own}") == 200
    with officer.page.expect_navigation():
        officer.page.click(f"form[action='/console/requests/{own}/approve'] button")
    assert officer.page.get_attribute("p.problem", "data-code") == "request.own"
