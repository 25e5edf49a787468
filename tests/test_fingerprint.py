"""The root CA's SHA-256 fingerprint, as openssl prints it: `certdesk ca show` (readable at 80
columns) and the portal's pages that tell people to install the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from certdesk.services.authorities import pki_dir
from certdesk.services.context import Context
from certdesk.services.demo import bootstrap
from certdesk.web.app import create_app
from conftest import openssl
from portal_client import client_for
from test_cli import Desk


def openssl_fingerprint(pem: Path) -> str:
    out = openssl("x509", "-in", pem, "-noout", "-fingerprint", "-sha256")
    assert out.returncode == 0, out.stderr
    label, value = out.stdout.strip().split("=", 1)
    assert label.lower() == "sha256 fingerprint"
    return value


@pytest.mark.parametrize("columns", ["80", "120"])
def test_ca_show_is_one_block_per_ca_with_openssls_fingerprint(
    tmp_path: Path, columns: str
) -> None:
    desk = Desk(tmp_path)
    desk.ok("ca", "init")
    pki = tmp_path / "var" / "pki"
    root, issuing = openssl_fingerprint(pki / "root.pem"), openssl_fingerprint(pki / "issuing.pem")
    assert root != issuing
    out = desk.ok("ca", "show", COLUMNS=columns).stdout
    lines = out.splitlines()
    # one `field: value` line per fact: nothing is wrapped into a table cell
    assert not any(ch in out for ch in "┃│┏"), out
    assert "CA root (root, generation 1, active)" in lines
    assert "CA issuing (issuing, generation 1, active)" in lines
    assert f"  SHA-256 fingerprint: {root}" in lines
    assert f"  SHA-256 fingerprint: {issuing}" in lines
    assert "  subject:             CN=certdesk Demo Root CA,O=certdesk Demo,C=CN" in lines
    # every line fits the terminal but two values never cut: the fingerprint (95 characters of
    # colon hex) and the key file's path (here under a long temporary directory)
    long = ("  SHA-256 fingerprint:", "  key:")
    assert all(len(line) <= int(columns) for line in lines if not line.startswith(long)), out
    shown = desk.json("ca", "show")
    assert isinstance(shown, list)
    assert [ca["sha256_fingerprint"] for ca in shown] == [root, issuing]


@pytest.fixture
def demo(ctx: Context) -> Context:
    bootstrap(ctx)
    return ctx


def test_status_and_no_certificate_pages_show_the_root_fingerprint(demo: Context) -> None:
    root = openssl_fingerprint(pki_dir(demo) / "root.pem")
    issuing = openssl_fingerprint(pki_dir(demo) / "issuing.pem")
    app = create_app(demo)
    for lang, phrase in (
        ("en", "check that its SHA-256 fingerprint is exactly"),
        ("zh-CN", "请核对其 SHA-256 指纹"),
    ):
        browser = client_for(app, None, lang=lang)
        page = browser.get("/")
        assert page.status_code == 401 and 'data-code="login.no_certificate"' in page.text
        assert phrase in page.text and f'<code class="fingerprint">{root}</code>' in page.text
        assert issuing not in page.text
        status = browser.get("/status")
        assert status.status_code == 200
        assert f'<code class="fingerprint">{root}</code>' in status.text
    assert browser.get("/healthz").json()["root_fingerprint"] == root
    # other refusals do not carry it
    other = client_for(app, None).get("/pki/nope")
    assert root not in other.text
