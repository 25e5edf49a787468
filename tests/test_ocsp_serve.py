"""The OCSP responder of a running `certdesk serve`, asked by real clients: `openssl ocsp` (POST),
curl (GET, caching headers), nginx serving the pre-signed files, and nginx's own `ssl_ocsp`
checking the holders of the portal. A lost token reported by another process flips the answer
within seconds (polled with a deadline, no sleeping for time to pass)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.config import Config
from certdesk.services import registry
from certdesk.services.context import Context
from certdesk.services.demo import DEMO_UNIT
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.revocation import revoke
from certdesk.services.tokens import register_token, report_lost
from certdesk.store.db import Database
from conftest import openssl
from test_nginx import Stack, curl, make_certificates, nginx_config, start_nginx
from test_web import free_port, serving, wait_for_port

CERTDESK = str(Path(sys.executable).parent / "certdesk")
DEADLINE = 20.0  # seconds a change may take to reach the answer (polled, never slept for)


@dataclass
class Desk:
    tmp: Path
    url: str  # http://127.0.0.1:PORT/ocsp
    pki: Path
    ctx: Context  # the test's own process, on the server's database


@pytest.fixture
def desk(tmp_path: Path, db_url: str) -> Iterator[Desk]:
    port = free_port()
    data_dir = tmp_path / "var"
    env = {
        **os.environ,
        "CERTDESK_PATHS_DATA_DIR": str(data_dir),
        "CERTDESK_DATABASE_URL": db_url,
        "CERTDESK_SERVER_PORT": str(port),
        "CERTDESK_SERVER_TLS": "false",
        "CERTDESK_URLS_BASE": f"http://127.0.0.1:{port}",
    }
    init = subprocess.run(
        [CERTDESK, "init"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, init.stderr
    config = Config().replace(paths={"data_dir": str(data_dir)}, database={"url": db_url})
    db = Database(db_url)
    try:
        with serving(tmp_path, env, port):
            yield Desk(
                tmp_path, f"http://127.0.0.1:{port}/ocsp", data_dir / "pki", Context(config, db)
            )
    finally:
        db.dispose()


def holder(desk: Desk, person_id: str, token: str | None = None) -> tuple[str, Path]:
    """A person with a certificate (on `token` if given): its serial and PEM file."""
    ctx = desk.ctx
    registry.add_person(ctx, person_id, f"Holder {person_id}", DEMO_UNIT[0], "h@demo.example")
    if token is not None:
        register_token(ctx, token)
    key = ec.generate_private_key(ec.SECP256R1())
    issued = Issuance(ctx).issue(OfficerEnrolment(ctx, person_id, key.public_key(), token))
    path = desk.tmp / f"{person_id}.pem"
    path.write_bytes(issued.certificate.public_bytes(Encoding.PEM))
    return issued.serial, path


def ask(desk: Desk, *what: str | Path) -> str:
    """`openssl ocsp` against the server (POST, no nonce), the response's signature checked."""
    done = openssl(
        "ocsp",
        "-issuer",
        desk.pki / "issuing.pem",
        "-CAfile",
        desk.pki / "root.pem",
        "-url",
        desk.url,
        "-no_nonce",
        *what,
    )
    assert "Response verify OK" in done.stderr, done.stderr + done.stdout
    return done.stdout


def test_openssl_ocsp_good_revoked_unknown_and_a_lost_token(desk: Desk) -> None:
    _serial, lost_pem = holder(desk, "p-lost", token="TK-LOST")
    revoked_serial, revoked_pem = holder(desk, "p-revoked")
    revoke(desk.ctx, revoked_serial, "affiliationChanged")
    assert re.search(r": good\b", ask(desk, "-cert", lost_pem))
    out = ask(desk, "-cert", revoked_pem)
    assert ": revoked" in out and "Reason: affiliationChanged" in out
    assert ": unknown" in ask(desk, "-serial", "0x1234567890abcdef")
    # with a nonce (openssl's default): the pre-signed answer, without one (RFC 5019)
    done = openssl(
        "ocsp", "-issuer", desk.pki / "issuing.pem", "-CAfile", desk.pki / "root.pem",
        "-url", desk.url, "-cert", lost_pem,
    )  # fmt: skip
    assert "WARNING: no nonce in response" in done.stderr and ": good" in done.stdout
    # the token is reported lost by another process (the office's CLI would be the same)
    report_lost(desk.ctx, "TK-LOST")
    reported = time.monotonic()
    while ": revoked" not in (out := ask(desk, "-cert", lost_pem)):
        assert time.monotonic() - reported < DEADLINE, out
    assert "Reason: keyCompromise" in out


def get(desk: Desk, request: bytes, *args: str) -> tuple[dict[str, str], bytes]:
    """GET `<url>/<base64 request, URL-escaped>` with curl: headers and body."""
    url = f"{desk.url}/{quote(base64.b64encode(request).decode(), safe='')}"
    body = desk.tmp / "get.der"
    done = subprocess.run(
        ["curl", "-sS", "-D", "-", "-o", str(body), *args, url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert " 200" in lines[0], done.stdout
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return {k.lower(): v.strip() for k, v in headers.items()}, body.read_bytes()


def request_for(desk: Desk, *what: str | Path) -> bytes:
    path = desk.tmp / "req.der"
    done = openssl("ocsp", "-issuer", desk.pki / "issuing.pem", "-no_nonce", "-reqout", path, *what)
    assert done.returncode == 0, done.stderr
    return path.read_bytes()


def respin(desk: Desk, response: bytes, *what: str | Path) -> subprocess.CompletedProcess[str]:
    path = desk.tmp / "resp.der"
    path.write_bytes(response)
    return openssl(
        "ocsp", "-respin", path, "-issuer", desk.pki / "issuing.pem",
        "-CAfile", desk.pki / "root.pem", *what,
    )  # fmt: skip


def test_get_with_caching_headers_malformed_and_unauthorized(desk: Desk) -> None:
    _serial, pem = holder(desk, "p-get")
    headers, body = get(desk, request_for(desk, "-cert", pem))
    done = respin(desk, body, "-cert", pem)
    assert "Response verify OK" in done.stderr and ": good" in done.stdout
    assert headers["content-type"] == "application/ocsp-response"
    max_age = int(re.search(r"max-age=(\d+)", headers["cache-control"]).group(1))  # type: ignore[union-attr]
    assert 0 < max_age <= 24 * 3600
    assert headers["etag"].startswith('"') and headers["expires"] and headers["last-modified"]
    # garbage, by GET and by POST: malformedRequest, never an HTTP error
    for _headers, garbage in (
        get(desk, b"\x30\x03abc"),
        (None, post(desk, b"not an OCSP request")),
        (None, post(desk, b"")),
    ):
        assert "malformedrequest" in respin(desk, garbage, "-resp_text").stdout.lower()
    # an issuer certdesk does not run (another CA of the same name)
    other = desk.tmp / "other"
    other.mkdir()
    done = openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", other / "ca.key", "-out", other / "ca.pem", "-subj", "/CN=Other CA",
        "-days", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = openssl(
        "ocsp", "-issuer", other / "ca.pem", "-serial", "0x1", "-url", desk.url, "-no_nonce"
    )
    assert "unauthorized" in (done.stdout + done.stderr).lower()


def post(desk: Desk, data: bytes) -> bytes:
    path = desk.tmp / "post.bin"
    path.write_bytes(data)
    done = subprocess.run(
        ["curl", "-sS", "-f", "--data-binary", f"@{path}", "-H",
         "Content-Type: application/ocsp-request", "-o", "-", desk.url],
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- nginx ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path, str]]:
    """certdesk behind two nginx: docs/nginx-certdesk.conf as written (OCSP files), and the
    same with `ssl_verify_client on` and its `ssl_ocsp` lines switched on."""
    tmp = tmp_path_factory.mktemp("ocsp-nginx")
    data_dir = tmp / "var"
    env = {**os.environ, "CERTDESK_PATHS_DATA_DIR": str(data_dir)}
    init = subprocess.run(
        [CERTDESK, "init"], cwd=tmp, env=env, capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, init.stderr
    certs = tmp / "certs"
    certs.mkdir()
    make_certificates(data_dir, certs)
    backend, files_port, ocsp_port = free_port(), free_port(), free_port()
    env |= {
        "CERTDESK_SERVER_PORT": str(backend),
        "CERTDESK_SERVER_TLS": "false",
        "CERTDESK_SERVER_TRUSTED_PROXIES": "127.0.0.2/32",
        "CERTDESK_URLS_BASE": f"https://127.0.0.1:{files_port}",
    }
    files_dir, checking_dir = tmp / "files", tmp / "checking"
    files_dir.mkdir()
    checking_dir.mkdir()
    files_conf = nginx_config(files_dir, data_dir, files_port, backend)
    checking_conf = nginx_config(checking_dir, data_dir, ocsp_port, backend)
    site = checking_dir / "certdesk.conf"
    text = site.read_text()
    for old, new in [
        ("ssl_verify_client      optional;", "ssl_verify_client      on;"),
        ("error_page 495 = @certdesk;", ""),
        ("#ssl_ocsp           on;", "ssl_ocsp           on;"),
        (
            "#ssl_ocsp_responder http://127.0.0.1:8080/ocsp;",
            f"ssl_ocsp_responder http://127.0.0.1:{backend}/ocsp;",
        ),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    site.write_text(text)
    with serving(tmp, env, backend) as server:
        wait_for_port(server, backend)
        files = start_nginx(files_dir, files_conf, files_port)
        try:
            checking = start_nginx(checking_dir, checking_conf, ocsp_port)
            try:
                yield (
                    Stack(f"https://127.0.0.1:{files_port}", "", data_dir / "pki", certs),
                    data_dir,
                    f"https://127.0.0.1:{ocsp_port}",
                )
            finally:
                checking.terminate()
                checking.wait(timeout=10)
        finally:
            files.terminate()
            files.wait(timeout=10)


def test_nginx_serves_the_presigned_files(behind_nginx: tuple[Stack, Path, str]) -> None:
    stack, data_dir, _ = behind_nginx
    cert = stack.certs / "valid.crt"
    request = stack.certs / "valid.req"
    done = openssl(
        "ocsp", "-issuer", stack.pki / "issuing.pem", "-cert", cert, "-no_nonce", "-reqout", request
    )
    assert done.returncode == 0, done.stderr
    name = base64.b64encode(request.read_bytes()).decode()
    # one request in 64 encodes to base64 ending in `/`: no file can have that name, and nginx
    # hands the request to certdesk (its ETag is a quoted SHA-1), which answers all the same
    filed = not name.endswith("/")
    deadline = time.monotonic() + DEADLINE  # written by the server's first pre-signing round
    while filed and not (data_dir / "ocsp-files" / "ocsp" / name).exists():
        assert time.monotonic() < deadline, "no pre-signed file"
        time.sleep(0.05)  # waiting on the server's work
    url = f"{stack.nginx}/ocsp/{quote(name, safe='')}"
    headers = stack.certs / "headers.txt"
    body = stack.certs / "resp.der"
    done = subprocess.run(
        ["curl", "-sS", "--cacert", str(stack.pki / "root.pem"), "-D", str(headers),
         "-o", str(body), url],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = headers.read_text().lower()
    # nginx's own ETag ("mtime-size" in hex), not certdesk's (a quoted SHA-1): the file was served
    served_by_nginx = re.search(r'etag: "[0-9a-f]+-[0-9a-f]+"', seen)
    assert bool(served_by_nginx) is filed, seen
    assert "content-type: application/ocsp-response" in seen
    # nginx's caching header on a file; certdesk's own (max-age up to nextUpdate) otherwise
    assert ("max-age=300" in seen) is filed, seen
    checked = openssl(
        "ocsp", "-respin", body, "-issuer", stack.pki / "issuing.pem",
        "-CAfile", stack.pki / "root.pem", "-cert", cert,
    )  # fmt: skip
    assert "Response verify OK" in checked.stderr and ": good" in checked.stdout
    # POST and anything without a file go to certdesk
    status, _ = curl(stack, f"{stack.nginx}/ocsp/{quote('MAo=', safe='')}")
    assert status == 200


def test_nginx_ssl_ocsp_refuses_the_revoked_holder(behind_nginx: tuple[Stack, Path, str]) -> None:
    stack, data_dir, checking = behind_nginx
    status, body = curl(stack, f"{checking}/", cert="valid")
    assert status == 200 and "Demo Approver" in body
    status, body = curl(stack, f"{checking}/", cert="revoked")
    assert status == 400 and "SSL certificate error" in body
    # the valid holder's certificate is revoked by another process: nginx refuses it soon
    config = Config().replace(paths={"data_dir": str(data_dir)})
    db = Database(config.database_url)
    try:
        ctx = Context(config, db, actor="test")
        pem = (stack.certs / "valid.crt").read_bytes()
        serial = format(x509.load_pem_x509_certificate(pem).serial_number, "x")
        revoke(ctx, serial, "keyCompromise")
    finally:
        db.dispose()
    revoked = time.monotonic()
    while curl(stack, f"{checking}/", cert="valid")[0] != 400:
        assert time.monotonic() - revoked < DEADLINE, "nginx still lets the revoked holder in"
