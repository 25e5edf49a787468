"""The HTTPS server from `certdesk init` + `certdesk serve`, checked with curl and openssl."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from anyio import to_thread
from fastapi.testclient import TestClient

from certdesk.services.context import Context
from certdesk.services.demo import bootstrap
from certdesk.web.app import create_app
from conftest import openssl

CERTDESK = str(Path(sys.executable).parent / "certdesk")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(proc: subprocess.Popen[bytes], port: int) -> None:
    """Block until the server accepts connections (or fail if it exited)."""
    for _ in range(600):
        if proc.poll() is not None:
            raise AssertionError(f"certdesk serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)  # waits on the process, not on time passing
    raise AssertionError("certdesk serve did not start listening")


@contextlib.contextmanager
def serving(cwd: Path, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`certdesk serve` in `cwd` with `env`, listening on `port` until the block ends."""
    proc = subprocess.Popen(
        [CERTDESK, "serve"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(proc, port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    env = {
        **os.environ,
        "CERTDESK_PATHS_DATA_DIR": str(tmp_path / "var"),
        "CERTDESK_SERVER_PORT": str(port),
        "CERTDESK_URLS_BASE": f"https://127.0.0.1:{port}",
    }
    init, again = (
        subprocess.run(
            [CERTDESK, "init"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(2)
    )
    assert init.returncode == 0, init.stderr
    assert again.returncode == 0 and "already" in again.stdout  # idempotent
    with serving(tmp_path, env, port):
        yield port, tmp_path / "var" / "pki"


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert shutil.which("curl"), "curl is not installed"
    return subprocess.run(["curl", "-sS", "--fail", *args], capture_output=True, check=False)


def test_https_serves_ca_certificates_and_crl(served: tuple[int, Path], tmp_path: Path) -> None:
    port, pki = served
    base = f"https://127.0.0.1:{port}"
    health = curl("--cacert", str(pki / "root.pem"), f"{base}/healthz")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["issuing"].startswith("CN=certdesk Demo Issuing CA,")
    crl_file = tmp_path / "issuing.crl"
    got = curl("--cacert", str(pki / "root.pem"), "-o", str(crl_file), f"{base}/pki/issuing.crl")
    assert got.returncode == 0, got.stderr
    parsed = openssl("crl", "-inform", "DER", "-in", crl_file, "-noout", "-text")
    assert parsed.returncode == 0 and "X509v3 CRL Number" in parsed.stdout
    ca = tmp_path / "issuing.crt"
    assert curl("--cacert", str(pki / "root.pem"), "-o", str(ca), f"{base}/pki/issuing.crt")
    assert openssl("x509", "-inform", "DER", "-in", ca, "-noout").returncode == 0
    # the server's own certificate chains to the demo root (curl already checked it; and
    # an unrelated trust store is refused)
    assert curl(f"{base}/healthz").returncode != 0


def test_problem_json_in_both_languages(ctx: Context) -> None:
    bootstrap(ctx)
    client = TestClient(create_app(ctx))
    en = client.get("/pki/secret.key")
    assert en.status_code == 400
    assert en.headers["content-type"].startswith("application/problem+json")
    assert en.json()["code"] == "input.invalid"
    zh = client.get("/pki/secret.key", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "输入无效" in zh.json()["detail"]
    assert client.get("/status").status_code == 200
    assert client.get("/").json()["code"] == "login.no_certificate"


def test_thread_budgets_come_from_the_configuration(ca_ctx: Context) -> None:
    """A few threads for blocking work, a separate budget for waits on the group committer."""
    config = ca_ctx.config.replace(server={"threads": 3, "issuing_threads": 17})
    app = create_app(Context(config, ca_ctx.db, ca_ctx.clock))

    async def default_tokens() -> float:
        return to_thread.current_default_thread_limiter().total_tokens

    with TestClient(app) as client:
        assert client.portal is not None
        assert client.portal.call(default_tokens) == 3
        assert app.state.threads.sizes == {"request": 3, "issuing": 17}
        assert client.get("/").json()["code"] == "login.no_certificate"  # ran in the pool
    with TestClient(app) as client:  # served again after a stop: new pools
        assert client.get("/").json()["code"] == "login.no_certificate"
