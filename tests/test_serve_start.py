"""`certdesk serve` at start, as whole processes: a port already taken is refused first, with a
stable code in both languages; the port alone moves the URLs in certificates; a TLS certificate
left not yet valid by a run with the clock ahead (libfaketime) is repaired at the next start."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from certdesk.services.demo import DEMO_PASSPHRASE
from softhsm import SoftHSM
from test_renew_faketime import DAY0, FakeTimeDesk
from test_web import free_port, wait_for_port

CERTDESK = str(Path(sys.executable).parent / "certdesk")


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
        "CERTDESK_PATHS_DATA_DIR": str(home / "var"),
        "CERTDESK_CA_PASSPHRASE": "serve start passphrase",
        **extra,
    }


def _certdesk(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTDESK, *args],
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("lang", "words"), [("en", "already in use"), ("zh-CN", "已被占用")], ids=["en", "zh-CN"]
)
def test_a_taken_port_is_refused_before_anything_is_done(
    tmp_path: Path, lang: str, words: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if lang == "en":  # the port from the configuration
            env = _env(tmp_path, CERTDESK_SERVER_PORT=str(port), CERTDESK_LANG=lang)
            result = _certdesk(tmp_path, env, "serve")
        else:  # the port from the command line
            env = _env(tmp_path, CERTDESK_LANG=lang)
            result = _certdesk(tmp_path, env, "serve", "--port", str(port))
    assert result.returncode == 3, result.stderr
    assert "[server.port_in_use]" in result.stderr
    assert words in result.stderr and str(port) in result.stderr
    assert "Errno" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "var").exists()  # no database, no TLS certificate: nothing was done


@pytest.mark.slow
def test_the_port_alone_moves_the_urls_in_certificates(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, CERTDESK_SERVER_PORT=str(port))  # no CERTDESK_URLS_BASE
    assert _certdesk(tmp_path, env, "init").returncode == 0
    p12 = pkcs12.load_pkcs12(
        (tmp_path / "var/demo/demo-0002.p12").read_bytes(), DEMO_PASSPHRASE.encode()
    )
    assert p12.cert is not None
    cdp = p12.cert.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    (url,) = [name.value for point in cdp.value for name in point.full_name or []]
    assert url == f"https://127.0.0.1:{port}/pki/issuing.crl"
    proc = subprocess.Popen(
        [CERTDESK, "serve"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(proc, port)
        fetched = subprocess.run(
            ["curl", "-sS", "--fail", "--cacert", "var/pki/root.pem", "-o", "got.crl", url],
            cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        crl = x509.load_der_x509_crl((tmp_path / "got.crl").read_bytes())
        assert crl.issuer == p12.cert.certificate.issuer
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_a_run_with_the_clock_ahead_does_not_break_the_next_normal_start(
    tmp_path: Path, softhsm: SoftHSM
) -> None:
    """The README's time-travel tip once left var/tls/server.crt not yet valid, and the next
    normal start answered curl with "certificate is not yet valid"."""
    desk = FakeTimeDesk(tmp_path, softhsm)
    desk.ok("init")

    def curl(day: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-sS", "--fail", "--cacert", "var/pki/root.pem", f"{desk.url}/healthz"],
            cwd=tmp_path, env=desk.at(day), capture_output=True, text=True, timeout=30,
            check=False,
        )  # fmt: skip

    with desk.serving(340):
        ahead = curl(340)
        assert ahead.returncode == 0, ahead.stderr
    left = x509.load_pem_x509_certificates((tmp_path / "var/tls/server.crt").read_bytes())[0]
    assert left.not_valid_before_utc > DAY0 + dt.timedelta(days=300)

    with desk.serving(0):
        now = curl(0)
        assert now.returncode == 0, now.stderr
        assert '"status":"ok"' in now.stdout.replace(" ", "")
    repaired = x509.load_pem_x509_certificates((tmp_path / "var/tls/server.crt").read_bytes())[0]
    assert repaired.not_valid_before_utc <= DAY0 + dt.timedelta(minutes=5)
    desk.ok("audit", "verify")
