"""The portal's login by certificate alone and the holder's pages (in-process, both databases)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from certdesk.domain.clock import FixedClock
from certdesk.services import registry
from certdesk.services.context import Context
from certdesk.services.demo import bootstrap
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.renewal import Renewals
from certdesk.services.revocation import revoke
from certdesk.store.tables import audit_log
from certdesk.web.app import create_app
from certdesk.web.portal.i18n import LOCALES, translations
from certdesk.web.portal.render import environment
from portal_client import client_for, issue_for
from test_renewal import Holder

TEMPLATES = Path(__file__).parent.parent / "src/certdesk/web/portal/templates"


@pytest.fixture
def demo(ctx: Context) -> Context:
    bootstrap(ctx)
    return ctx


def clock(ctx: Context) -> FixedClock:
    assert isinstance(ctx.clock, FixedClock)
    return ctx.clock


def problem_code(html: str) -> str:
    found = re.search(r'data-code="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_holder_home_shows_identity_and_validity(demo: Context) -> None:
    der = issue_for(demo, "demo-0001")
    page = client_for(create_app(demo), der).get("/")
    assert page.status_code == 200
    for text in ("Demo Holder", "Demo Finance Bureau", "Finance clerk", "2027-03-01 09:30"):
        assert text in page.text
    assert 'id="days-left">365<' in page.text
    assert "renewed now" not in page.text  # the window is a year away
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert "style=" not in page.text
    # outside the window the panel offers the token's status and Change PIN, not Renew now
    assert page.text.count("<script") == 1 and '<script src="/static/renewal.js">' in page.text
    assert 'id="change-pin"' in page.text and 'id="renew-now"' not in page.text


def test_a_served_page_identifies_on_the_event_loop(
    demo: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Served (within the lifespan), the login reads on the event loop's own connection: once
    the announcements are kept, a page hands nothing to a thread (a hand-off cost more CPU
    than the read) — and the login still sees a change made a moment before."""
    app = create_app(demo)
    handed: list[str] = []
    with client_for(app, issue_for(demo, "demo-0001")) as browser:
        for path in ("/", "/announcements"):  # the first of each reads the announcements
            assert browser.get(path).status_code == 200
        pool = app.state.threads.pool
        monkeypatch.setattr(
            app.state.threads, "pool", lambda name: handed.append(name) or pool(name)
        )
        assert browser.get("/announcements").status_code == 200
        registry.set_position(demo, "demo-0001", "approver")
        assert "/finance/payments" in browser.get("/").text
    assert handed == []


def test_renewal_banner_before_and_in_the_window(demo: Context) -> None:
    app = create_app(demo)
    der = issue_for(demo, "demo-0001")
    clock(demo).advance(dt.timedelta(days=325))
    assert "opens on 2027-01-30" in client_for(app, der).get("/").text
    clock(demo).advance(dt.timedelta(days=15))
    page = client_for(app, der, lang="zh-CN").get("/")
    assert "您的证书现在可以更新" in page.text and "立即更新" in page.text
    # the renewal panel's script is a static file (the CSP allows no inline script)
    assert page.text.count("<script") == 1 and '<script src="/static/renewal.js">' in page.text
    assert 'id="renew-now"' in page.text and 'id="get-certificate"' not in page.text


def test_a_renewal_not_yet_installed_is_offered_with_the_login(demo: Context) -> None:
    """Inside the window a renewal issued but not yet on the token is offered ("Get
    certificate", its serial), read with the login — with and without the lifespan."""
    issuance = Issuance(demo)
    key = ec.generate_private_key(ec.SECP256R1())
    old = issuance.issue(OfficerEnrolment(demo, "demo-0001", key.public_key()))
    clock(demo).advance(dt.timedelta(days=340))
    app = create_app(demo)
    page = client_for(app, old.der).get("/")
    assert 'id="renew-now"' in page.text and 'id="get-certificate"' not in page.text
    renewed = Holder(Renewals(demo, issuance), key, old.serial).renew(
        ec.generate_private_key(ec.SECP256R1())
    )
    with client_for(app, old.der) as browser:
        for page in (browser.get("/"), client_for(app, old.der).get("/")):
            assert 'id="get-certificate"' in page.text and 'id="renew-now"' not in page.text
            assert f"({renewed.serial})" in page.text


def test_language_switch_and_every_string_translated(demo: Context) -> None:
    der = issue_for(demo, "demo-0001")
    browser = client_for(create_app(demo), der)
    zh = browser.get("/?lang=zh-CN")
    assert "欢迎您" in zh.text and zh.cookies.get("lang") == "zh-CN"
    assert "欢迎您" in browser.get("/").text  # the cookie keeps the choice
    assert "Welcome" in browser.get("/?lang=en").text
    # every string a template passes to _() has a Chinese translation
    zh_cn = translations("zh-CN")
    strings = {
        m.group(2)
        for path in TEMPLATES.rglob("*.html")
        for m in re.finditer(r"""_\((["'])(.+?)\1\)""", path.read_text())
    }
    missing = sorted(s for s in strings if zh_cn.gettext(s) == s)
    assert not missing, missing
    assert list(LOCALES.glob("zh_CN/LC_MESSAGES/*.po"))


def test_literal_texts_are_translated_when_a_template_is_compiled() -> None:
    """`_("…")` is static text in the compiled page (no call at render time); `_(variable)`,
    a call with arguments and `x._(…)` are left to the `_` given when the page renders."""
    source = '{{ _("Renew now") }}|{{ _(name) }}|{{ _("Days left", n=1) }}|{{ obj._("USB key") }}'
    env = environment("zh-CN")
    code = env.compile(source, raw=True)
    assert "立即更新" in code and "Renew now" not in code
    upper = lambda text, **_: text.upper()  # noqa: E731
    page = env.from_string(source).render(_=upper, name="x", obj={"_": upper})
    assert page == "立即更新|X|DAYS LEFT|USB KEY"
    assert environment("en").from_string('{{ _("Renew now") }}').render() == "Renew now"


def test_no_certificate_gets_the_insert_your_key_page(demo: Context) -> None:
    page = client_for(create_app(demo), None).get("/")
    assert page.status_code == 401
    assert problem_code(page.text) == "login.no_certificate"
    assert "Insert your USB key" in page.text and "/pki/root.crt" in page.text
    api = client_for(create_app(demo), None).get("/", headers={"Accept": "application/json"})
    assert api.headers["content-type"].startswith("application/problem+json")


def test_certificate_of_another_ca_is_not_ours(demo: Context) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Demo Holder")])
    now = dt.datetime.now(dt.UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    page = client_for(create_app(demo), forged.public_bytes(Encoding.DER)).get("/")
    assert page.status_code == 401 and problem_code(page.text) == "login.not_ours"


def test_expired_revoked_departed_explained(demo: Context) -> None:
    app = create_app(demo)
    der = issue_for(demo, "demo-0001")
    clock(demo).advance(dt.timedelta(days=366))
    expired = client_for(app, der).get("/")
    assert problem_code(expired.text) == "login.expired"
    assert "Demo Contact" in expired.text  # the unit's technical contact
    clock(demo).advance(dt.timedelta(days=-366))
    serial = format(x509.load_der_x509_certificate(der).serial_number, "x")
    revoke(demo, serial, "keyCompromise")
    revoked = client_for(app, der, lang="zh-CN").get("/")
    assert problem_code(revoked.text) == "login.revoked" and "keyCompromise" in revoked.text
    assert "被吊销" in revoked.text and "原因：密钥泄露（keyCompromise）" in revoked.text

    registry.add_person(demo, "p-leaver", "Wang Wu", "DEMO", "wang@demo.example")
    other = issue_for(demo, "p-leaver")
    with demo.db.write() as conn:
        from sqlalchemy import update

        from certdesk.store.tables import people

        conn.execute(
            update(people).where(people.c.person_id == "p-leaver").values(state="departed")
        )
    departed = client_for(app, other).get("/")
    assert departed.status_code == 403 and problem_code(departed.text) == "login.departed"


def test_superseded_certificate_gets_the_remove_it_page(demo: Context) -> None:
    issuance = Issuance(demo)
    old_key = ec.generate_private_key(ec.SECP256R1())
    old = issuance.issue(OfficerEnrolment(demo, "demo-0001", old_key.public_key()))
    clock(demo).advance(dt.timedelta(days=340))
    holder = Holder(Renewals(demo, issuance), old_key, old.serial)
    new_key = ec.generate_private_key(ec.SECP256R1())
    renewed = holder.renew(new_key)
    holder.confirm(renewed.serial, new_key)
    app = create_app(demo)
    with client_for(app, old.der) as browser:  # served: the login on the event loop's pool
        page = browser.get("/")
    assert page.status_code == 401 and problem_code(page.text) == "login.superseded"
    assert "Remove the old certificate" in page.text and renewed.serial in page.text
    with client_for(app, renewed.certificate.public_bytes(Encoding.DER)) as browser:
        assert browser.get("/").status_code == 200
    assert client_for(app, old.der).get("/").status_code == 401  # outside a lifespan too


def test_position_change_applies_at_the_next_request(demo: Context) -> None:
    app = create_app(demo)
    der = issue_for(demo, "demo-0001")
    browser = client_for(app, der)
    denied = browser.get("/finance/payments")
    assert denied.status_code == 403 and problem_code(denied.text) == "access.denied"
    assert "payment.approve" in denied.text
    with demo.db.read() as conn:
        actions = list(conn.execute(select(audit_log.c.action)).scalars())
    assert actions[-1] == "access.denied"
    assert "/finance/payments" not in browser.get("/").text  # not offered either
    registry.set_position(demo, "demo-0001", "approver")
    assert browser.get("/finance/payments").status_code == 200  # same certificate, no reissue
    assert "/finance/payments" in browser.get("/").text


def test_forms_and_announcements(demo: Context) -> None:
    from certdesk.services.content import publish_announcement, upload_form

    publish_announcement(demo, "Renewal season", "Renew in the last month.")
    upload_form(demo, "revocation-letter.txt", "Revocation letter", "申请吊销\n".encode())
    browser = client_for(create_app(demo), issue_for(demo, "demo-0001"))
    assert "Renewal season" in browser.get("/").text
    assert "Revocation letter" in browser.get("/forms").text
    download = browser.get("/forms/revocation-letter.txt")
    assert download.status_code == 200 and "申请吊销" in download.text
    assert "attachment" in download.headers["content-disposition"]
    assert "0771-0000000" in browser.get("/support").text


def test_helper_page_and_the_extension_for_this_portal(demo: Context) -> None:
    app = create_app(demo)
    der = issue_for(demo, "demo-0001")
    for lang, says in (("en", "Load unpacked"), ("zh-CN", "加载已解压的扩展程序")):
        page = client_for(app, der, lang=lang).get("/helper")
        assert page.status_code == 200 and says in page.text
        assert "certdesk helper install --browser" in page.text
    download = client_for(app, der).get("/helper/certdesk-extension.zip")
    assert download.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("certdesk-extension/manifest.json"))
    files = ("background.js", "content.js", "manifest.json")
    assert names == [f"certdesk-extension/{n}" for n in files]
    (script,) = manifest["content_scripts"]
    assert script["matches"] == [f"{demo.config.base_url}/*"]  # this portal only
    assert manifest["key"]  # the id stays the one the helper's manifest allows
    assert client_for(app, None).get("/helper").status_code == 401


def test_announcements_kept_until_another_is_published(demo: Context) -> None:
    """The home page keeps the announcements it read; one published elsewhere (another
    process: here straight into the database) shows at the next page all the same."""
    from certdesk.services.content import publish_announcement

    browser = client_for(create_app(demo), issue_for(demo, "demo-0001"))
    assert "Network maintenance" not in browser.get("/").text  # read and kept
    publish_announcement(demo, "Network maintenance", "Saturday from 22:00.")
    assert "Network maintenance" in browser.get("/").text
    assert "Network maintenance" in browser.get("/announcements").text
