"""`/api/docs` in a real browser (Playwright driving Debian's chromium against `certdesk serve`):
the page renders the API's operations under the portal's strict Content-Security-Policy, with no
violation reported and no request leaving the server's origin (it must work offline)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from live_portal import LivePortal, live_portal
from test_browser import ARGS, CHROMIUM, IN_CI

try:
    from playwright.sync_api import Route, sync_playwright
except ImportError:  # pragma: no cover - a dev dependency; required in CI
    if IN_CI:
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    with live_portal(tmp_path_factory.mktemp("api-docs")) as served:
        yield served


def test_api_docs_render_the_operations_within_the_csp(portal: LivePortal) -> None:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    outside: list[str] = []
    console: list[str] = []

    def only_our_origin(route: Route) -> None:
        if route.request.url.startswith(portal.base):
            route.continue_()
        else:  # a CDN, a validator badge, a font: nothing may leave the server
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(base_url=portal.base, ignore_https_errors=True)
            context.route("**/*", only_our_origin)
            context.add_init_script(RECORD_VIOLATIONS)
            page = context.new_page()
            page.on("console", lambda msg: console.append(msg.text))
            response = page.goto("/api/docs")
            assert response is not None and response.status == 200
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            page.wait_for_selector(".opblock", timeout=20_000)
            paths = set(page.locator(".opblock-summary-path").all_inner_texts())
            expected = set(portal_paths(portal))
            assert expected and {p.replace("\u200b", "") for p in paths} >= expected
            assert "certdesk" in page.locator(".info .title").inner_text()
            page.locator(".opblock-summary-path", has_text="/api/v1/me").first.click()
            page.wait_for_selector(".opblock-body", timeout=10_000)
            violations: list[Any] = page.evaluate("window.__csp")
        finally:
            browser.close()
    assert violations == []
    assert not [m for m in console if "Content Security Policy" in m], console
    assert outside == []


def portal_paths(portal: LivePortal) -> list[str]:
    """The paths /openapi.json lists, read with the ordinary client (curl)."""
    import json
    import subprocess

    got = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", str(portal.root_pem), f"{portal.base}/openapi.json"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return sorted(json.loads(got.stdout)["paths"])


def test_assets_are_files_of_the_package(tmp_path: Path, portal: LivePortal) -> None:
    import subprocess

    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css")):
        got = subprocess.run(
            ["curl", "-sS", "--fail", "-D", "-", "-o", str(tmp_path / name), "--cacert",
             str(portal.root_pem), f"{portal.base}/api/docs/{name}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert kind in got.stdout.lower()
        assert (tmp_path / name).stat().st_size > 10_000
    refused = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(portal.root_pem),
         f"{portal.base}/api/docs/..%2F..%2Fconsts.py"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert refused.stdout in {"400", "404"}
