"""curl logs in to the portal with the key and certificate ON the token, by PKCS#11 URI, as the
notice's users did with their USB keys: OpenSSL's pkcs11 engine (libengine-pkcs11-openssl)
loads SoftHSM; the server sees an ordinary TLS client certificate."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from live_portal import live_portal
from softhsm import USER_PIN, SoftHSM

pytestmark = [pytest.mark.softhsm, pytest.mark.slow]
LABEL = "zhang"
PERSON = "demo-0001"  # the demo clerk, who has no certificate until this test enrols one


def _required(what: str, present: bool) -> None:
    if present:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required in CI (apt-get install libengine-pkcs11-openssl curl)")
    pytest.skip(f"{what} is not installed")


def engine_path() -> Path:
    """Where OpenSSL looks for engines (`openssl version -e`), and the pkcs11 engine in it."""
    _required("openssl", shutil.which("openssl") is not None)
    out = subprocess.run(["openssl", "version", "-e"], capture_output=True, text=True, check=True)
    found = re.search(r'ENGINESDIR: "([^"]+)"', out.stdout)
    engine = Path(found.group(1) if found else "/nonexistent") / "pkcs11.so"
    _required("OpenSSL's pkcs11 engine", engine.exists())
    return engine


def openssl_conf(tmp_path: Path, module: str) -> Path:
    """An OpenSSL configuration that points the pkcs11 engine at SoftHSM's module directly
    (without it the engine goes through p11-kit's proxy, which finds SoftHSM only where its
    module is registered with p11-kit)."""
    conf = tmp_path / "openssl-pkcs11.cnf"
    conf.write_text(
        "openssl_conf = openssl_init\n"
        "[openssl_init]\n"
        "engines = engine_section\n"
        "[engine_section]\n"
        "pkcs11 = pkcs11_section\n"
        "[pkcs11_section]\n"
        "engine_id = pkcs11\n"
        f"dynamic_path = {engine_path()}\n"
        f"MODULE_PATH = {module}\n"
    )
    return conf


def test_curl_logs_in_with_the_key_on_the_token(softhsm: SoftHSM, tmp_path: Path) -> None:
    _required("curl", shutil.which("curl") is not None)
    env = {"OPENSSL_CONF": str(openssl_conf(tmp_path, softhsm.module))}
    softhsm.init_token(LABEL)
    with live_portal(tmp_path / "desk") as portal:
        enrolled = portal.certdesk("enroll", PERSON, "--token-label", LABEL, "--pin", USER_PIN)
        serial = re.search(r"certificate ([0-9a-f]+)", enrolled.stdout)
        assert serial, enrolled.stdout
        token = f"pkcs11:token={LABEL};object={PERSON}"
        command = [
            "curl", "-sS", "--cacert", str(portal.root_pem), "-H", "Accept: text/html",
            "--engine", "pkcs11", "--key-type", "ENG", "--cert-type", "ENG",
            "--key", f"{token};type=private;pin-value={USER_PIN}",
            "--cert", f"{token};type=cert",
            "-w", "\\n%{http_code}", f"{portal.base}/",
        ]  # fmt: skip
        # SOFTHSM2_CONF (set by the softhsm fixture) reaches curl, and through it SoftHSM
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **env}, check=False
        )
        assert done.returncode == 0, done.stderr
        page, status = done.stdout.rsplit("\n", 1)
        assert status == "200", page
        assert "Welcome, Demo Holder" in page
        assert serial.group(1) in page  # the certificate on the token is the one logged in

        # the same request without the token: the "insert your USB key" page, not a login
        bare = subprocess.run(
            ["curl", "-sS", "--cacert", str(portal.root_pem), "-H", "Accept: text/html",
             "-w", "\\n%{http_code}", f"{portal.base}/"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        page, status = bare.stdout.rsplit("\n", 1)
        assert status == "401" and "login.no_certificate" in page
        assert "Demo Holder" not in page
