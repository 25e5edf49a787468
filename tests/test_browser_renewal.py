"""Renewal from the portal in a real browser: Debian's chromium (Playwright, headless) with the
certdesk extension loaded, `certdesk-helper` installed as its native messaging host in the
test profile, a SoftHSM token holding the holder's key and certificate (the same pair the
browser logs in with), a scripted pinentry for the PIN and `certdesk serve` inside the
holder's renewal window (libfaketime: the certificates were issued 340 days ago).

One journey per holder: no helper → install → the token's status → a foreign origin refused →
wrong PIN → Renew now (the new pair on the token, the old one gone, superseded, in the CRL,
`openssl verify`); and an interrupted renewal finished with "Get certificate" (same serial, no
second certificate). With CERTDESK_SCREENSHOTS=1 the steps are saved in docs/screenshots/.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import http.server
import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)

import scripted_pinentry
from certdesk.client.renewal import RENEW, TokenRenewal
from certdesk.client.server import Server
from certdesk.client.settings import load_settings
from certdesk.domain.errors import CertdeskError
from certdesk.token.device import find_token, open_session
from certdesk.token.inventory import present_tokens, public_certificates
from conftest import openssl
from softhsm import MODULE, USER_PIN, SoftHSM, softhsm_in
from test_renew_faketime import FakeTimeDesk, token_certificates

try:
    from playwright.sync_api import BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - a dev dependency; required in CI
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
EXTENSION = Path(__file__).resolve().parent.parent / "extension"
SHOTS = os.environ.get("CERTDESK_SCREENSHOTS", "") == "1"
SHOT_DIR = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PASSPHRASE = "renewal-passphrase"
NEW_PIN = "24681357"
ANSWER = 8_000  # ms: a renewal signs on the token and issues with pkilint on


def _needs_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed")


def enrol(desk: FakeTimeDesk, softhsm: SoftHSM, person: str, label: str) -> tuple[Path, Path]:
    """A PKCS#12 from the office, its pair also put on the holder's token: (cert, key) PEMs."""
    p12 = desk.home / f"{person}.p12"
    desk.ok("enroll", person, "--p12", str(p12), "--p12-passphrase", PASSPHRASE)
    loaded = pkcs12.load_pkcs12(p12.read_bytes(), PASSPHRASE.encode())
    assert loaded.key is not None and loaded.cert is not None
    cert = loaded.cert.certificate
    key_id = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest.hex()
    files = {
        "cert": (desk.home / f"{person}.crt", cert.public_bytes(Encoding.PEM)),
        "key": (
            desk.home / f"{person}.key",
            loaded.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        ),
        "cert.der": (desk.home / f"{person}.crt.der", cert.public_bytes(Encoding.DER)),
        "key.der": (
            desk.home / f"{person}.key.der",
            loaded.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()),
        ),
    }
    for path, data in files.values():
        path.write_bytes(data)
    softhsm.init_token(label)
    for kind, name in (("privkey", "key.der"), ("cert", "cert.der")):
        subprocess.run(
            [
                *("pkcs11-tool", "--module", MODULE, "--token-label", label),
                *("--login", "--pin", USER_PIN, "--write-object", str(files[name][0])),
                *("--type", kind, "--id", key_id, "--label", person),
            ],
            check=True,
            capture_output=True,
        )
    return files["cert"][0], files["key"][0]


class Holder:
    """One browser profile with the extension, one holder's login certificate, one pinentry."""

    def __init__(self, desk: FakeTimeDesk, folder: Path, page: Page) -> None:
        self.desk, self.folder, self.page = desk, folder, page
        self.pin_file = folder / "pin"
        self.log = folder / "pinentry.log"

    def open(self, lang: str = "en", origin: str | None = None) -> None:
        self.page.goto(f"{origin or self.desk.url}/?lang={lang}")
        self.page.wait_for_selector("#renewal[data-state]", state="attached", timeout=ANSWER)

    def press(self, button: str, pin: str) -> str:
        self.pin_file.write_text(pin)
        self.page.click(f"#{button}")
        self.page.wait_for_selector("#renewal-result:not([hidden])", timeout=ANSWER)
        return self.page.inner_text("#renewal-result")

    def shot(self, name: str, lang: str) -> None:
        if SHOTS:
            SHOT_DIR.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SHOT_DIR / f"{name}.{lang}.png"), full_page=True)


@contextlib.contextmanager
def browser(desk: FakeTimeDesk, folder: Path, cert: Path, key: Path) -> Iterator[Holder]:
    folder.mkdir()
    holder = Holder(desk, folder, None)  # type: ignore[arg-type]
    env = {
        **os.environ,
        "CERTDESK_CLIENT_HOME": desk.env["CERTDESK_CLIENT_HOME"],
        "CERTDESK_PINENTRY": str(scripted_pinentry.write(folder)),
        "PINENTRY_PIN_FILE": str(holder.pin_file),
        "PINENTRY_LOG": str(holder.log),
    }
    offered = [{"origin": desk.url, "certPath": cert, "keyPath": key}]
    with sync_playwright() as pw:
        context: BrowserContext = pw.chromium.launch_persistent_context(
            str(folder / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless=new",
                "--no-sandbox",
                f"--disable-extensions-except={EXTENSION}",
                f"--load-extension={EXTENSION}",
            ],
            client_certificates=offered,
            ignore_https_errors=True,
            env=env,
            locale="en-US",
            viewport={"width": 1000, "height": 900},
        )
        try:
            holder.page = context.pages[0] if context.pages else context.new_page()
            yield holder
        finally:
            context.close()


def install_helper(desk: FakeTimeDesk, holder: Holder) -> None:
    desk.ok(
        "helper",
        "install",
        "--browser",
        "chromium",
        "--user-data-dir",
        str(holder.folder / "profile"),
    )


def verify(desk: FakeTimeDesk, serial: str) -> None:
    pem = desk.home / f"{serial}.pem"
    pem.write_text(desk.ok("cert", "show", serial, "--pem").stdout)
    pki = desk.home / "var" / "pki"
    done = openssl("verify", "-CAfile", pki / "root.pem", "-untrusted", pki / "issuing.pem", pem)
    assert done.returncode == 0, done.stderr


FOREIGN_PAGE = """<!doctype html><pre id="out"></pre><script>
window.addEventListener("message", (e) => {
  if (e.data && e.data.certdesk === "answer" && e.data.id === 1 && e.data.type === "error")
    document.getElementById("out").textContent = JSON.stringify(e.data);
});
setTimeout(() => window.postMessage(
  {certdesk: "request", id: 1, command: "renew"}, location.origin), 300);
</script>"""


@contextlib.contextmanager
def foreign_site(folder: Path) -> Iterator[str]:
    """Another site (https://localhost, where the development extension also runs) whose
    page asks the extension to renew."""
    folder.mkdir()
    (folder / "index.html").write_text(FOREIGN_PAGE)
    key, cert = folder / "tls.key", folder / "tls.crt"
    done = openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
    )
    assert done.returncode == 0, done.stderr
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


class LosesRenewalAnswer(Server):
    """The renewal reaches the server, its answer is lost (as if the helper was killed)."""

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = super()._call(method, path, **kw)
        if path == RENEW:
            raise CertdeskError("client.server_unreachable", url=path, detail="answer lost")
        return response


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, SoftHSM, Any]]:
    """One desk for the module (its set-up is most of the time): two holders, two tokens."""
    _needs_chromium()
    home = tmp_path_factory.mktemp("browser-renewal")
    with pytest.MonkeyPatch.context() as env:
        softhsm = softhsm_in(home, env)
        start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(days=340)
        desk = FakeTimeDesk(home, softhsm, start=start)
        desk.ok("init")
        desk.ok(
            *("person", "add", "p-002", "--name", "Li Si", "--unit", "DEMO"),
            *("--email", "li@demo.example"),
        )
        logins = {
            "alice": enrol(desk, softhsm, "demo-0001", "alice"),
            "bob": enrol(desk, softhsm, "p-002", "bob"),
        }
        env.setenv("CERTDESK_CLIENT_HOME", desk.env["CERTDESK_CLIENT_HOME"])
        with desk.serving(340):
            desk.ok("connect", desk.url, "--yes")
            yield desk, softhsm, logins


def test_renew_now_from_the_portal(world: Any, tmp_path: Path) -> None:
    served, softhsm, logins = world
    (old,) = token_certificates(softhsm, "alice")
    (previous,) = json.loads(served.ok("cert", "list", "--person", "demo-0001", "--json").stdout)
    with browser(served, tmp_path / "alice-browser", *logins["alice"]) as holder:
        for lang, says in (("en", "helper program is not"), ("zh-CN", "未安装 certdesk 助手程序")):
            holder.open(lang)
            assert holder.page.is_visible("#no-helper") and says in holder.page.inner_text(
                "#renewal"
            )
            holder.shot("renew-no-helper", lang)
        install_helper(served, holder)
        for lang in ("zh-CN", "en"):
            holder.open(lang)
            assert holder.page.is_visible("#token-status"), holder.page.inner_text("#renewal")
            holder.shot("renew-status", lang)
        status = holder.page.inner_text("#token-status")
        assert "alice" in status and "Demo Holder" in status and "open" in status
        assert holder.page.inner_text("#ts-days") in ("24", "25")

        # a page of another origin reaches the extension; the helper refuses it
        with foreign_site(tmp_path / "foreign") as foreign:
            holder.page.goto(foreign)
            holder.page.wait_for_selector("#out:has-text('error')", timeout=ANSWER)
            refused = json.loads(holder.page.inner_text("#out"))
        assert refused["code"] == "helper.origin_refused", refused
        assert served.url in refused["messages"]["en"]
        assert not holder.log.exists()  # no PIN dialog
        assert token_certificates(softhsm, "alice") == [old]

        for lang, says in (("zh-CN", "PIN 码错误"), ("en", "tries")):
            holder.open(lang)
            wrong = holder.press("renew-now", "000000")
            assert "[pkcs11.wrong_pin]" in wrong and says in wrong, wrong
            holder.shot("renew-wrong-pin", lang)
        assert f"SETDESC {served.url} asks to renew" in holder.log.read_text()
        assert token_certificates(softhsm, "alice") == [old]

        done = holder.press("renew-now", USER_PIN)
        assert done.startswith("Renewed: certificate"), done
        steps = holder.page.inner_text("#renewal-progress")
        for step in ("3/7", "6/7", "7/7", "old certificate and its key were removed"):
            assert step in steps
        holder.shot("renew-done", "en")
        dialog = holder.log.read_text()
        assert "Name / 姓名: Demo Holder" in dialog and "call the office" in dialog
        new_serial = done.split()[2].rstrip(",")
        # what the next login brings: the "replaced by" page's steps, the new serial written in
        assert f"serial {new_serial}." in holder.page.inner_text("#next-login ol")
        # the token's status box is read again: the new certificate, a full year left
        holder.page.wait_for_selector(f"#ts-serial:text-is('{new_serial}')", timeout=ANSWER)
        assert int(holder.page.inner_text("#ts-days")) > 300

        # Change PIN: all three PINs in the helper's dialog; this demo token is not in the
        # registry (a PKCS#12 copied on it), which the page says after the PIN changed
        holder.log.unlink()
        changed = holder.press("change-pin", f"{USER_PIN}\n{NEW_PIN}\n{NEW_PIN}")
        assert changed.startswith("[token.no_token_recorded]"), changed
        assert "PIN of token alice changed." in holder.page.inner_text("#renewal-progress")
        assert f"SETDESC {served.url} asks to change the PIN" in holder.log.read_text()
    # the real client on the token: exactly the new certificate and its key, the old pair gone
    objects = softhsm.objects("alice", NEW_PIN)
    certs = [o for o in objects if o["kind"] == "Certificate"]
    keys = [o for o in objects if o["kind"] == "Private Key"]
    assert len(certs) == 1 and len(keys) == 1 and certs[0]["ID"] == keys[0]["ID"] != old["ID"]
    assert int(certs[0]["serial"], 16) == int(new_serial, 16) != int(old["serial"], 16)
    assert "never extractable" in keys[0]["Access"]  # made on the token
    assert served.cert(new_serial)["state"] == "active"
    assert served.cert(previous["serial"])["state"] == "superseded"
    served.ok("crl", "publish")
    crl = served.home / "var" / "pki" / "issuing.crl"
    listed = openssl("crl", "-inform", "DER", "-in", crl, "-noout", "-text").stdout
    assert previous["serial"].upper() in listed.replace(":", "").upper()
    verify(served, new_serial)


def test_get_certificate_after_a_lost_answer(world: Any, tmp_path: Path) -> None:
    served, softhsm, logins = world
    settings = load_settings()
    assert settings is not None
    device = find_token(MODULE, label="bob")
    with LosesRenewalAnswer(settings) as server, open_session(device, USER_PIN) as session:
        flow = TokenRenewal(server, device, session, lambda en, zh: None)
        with pytest.raises(CertdeskError, match="answer lost"):
            flow.renew(lambda profile: None)
    listed = json.loads(served.ok("cert", "list", "--person", "p-002", "--json").stdout)
    issued = [c["serial"] for c in listed if c["state"] == "pending_install"]
    assert len(issued) == 1
    with browser(served, tmp_path / "bob-browser", *logins["bob"]) as holder:
        install_helper(served, holder)
        for lang in ("en", "zh-CN"):
            holder.open(lang)
            assert issued[0] in holder.page.inner_text("#renewal")
            holder.shot("renew-get-certificate", lang)
        done = holder.press("get-certificate", USER_PIN)  # the page is in Chinese now
        assert done.startswith(f"更新成功：证书 {issued[0]}，"), done
        holder.shot("renew-done", "zh-CN")
        # the browser still logs in with the old certificate: the portal says what to do,
        # as the result above announced
        steps = holder.page.inner_text("#next-login ol")
        holder.page.goto(f"{served.url}/?lang=zh-CN")
        assert f"已由新证书 {issued[0]} 取代" in holder.page.inner_text("main")
        assert holder.page.inner_text("main ol") == steps  # the two pages say the same
    listed = json.loads(served.ok("cert", "list", "--person", "p-002", "--json").stdout)
    assert sorted(c["state"] for c in listed) == ["active", "superseded"]  # no second one
    (bob,) = [d for d in present_tokens(MODULE) if d.label == "bob"]
    assert [format(c.certificate.serial_number, "x") for c in public_certificates(bob)] == issued
    assert sorted(o["kind"] for o in softhsm.objects("bob")) == [
        "Certificate",
        "Private Key",
        "Public Key",
    ]  # the old pair is gone
    verify(served, issued[0])
