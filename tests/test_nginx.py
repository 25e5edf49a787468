"""nginx in front: `certdesk serve --plain-http` behind a real nginx on loopback running
docs/nginx-certdesk.conf, checked with curl.

nginx terminates TLS (`ssl_verify_client optional`, `error_page 495` handing failed certificates
on) and forwards the certificate in `X-SSL-Client-Cert`; the backend believes that header only
from `server.trusted_proxies`. Here nginx connects from 127.0.0.2 (`proxy_bind`) and only
127.0.0.2 is trusted, so a request straight to the backend from 127.0.0.1 is "untrusted".
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from certdesk.config import Config
from certdesk.domain.clock import FixedClock, SystemClock
from certdesk.services import registry
from certdesk.services.context import Context
from certdesk.services.demo import DEMO_PASSPHRASE, DEMO_UNIT
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.journal import attach
from certdesk.services.revocation import revoke
from certdesk.store.db import Database
from test_web import free_port, wait_for_port

CERTDESK = str(Path(sys.executable).parent / "certdesk")
DOCS_CONF = Path(__file__).parent.parent / "docs" / "nginx-certdesk.conf"
PROXY_ADDRESS = "127.0.0.2"  # nginx → backend source address, the only trusted one


def nginx_binary() -> str:
    """nginx lives in /usr/sbin, often not on a normal user's PATH."""
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("nginx is required in CI (apt-get install nginx)")
        pytest.skip("nginx is not installed")
    return found


def nginx_config(prefix: Path, data_dir: Path, port: int, backend: int) -> str:
    """docs/nginx-certdesk.conf with this test's paths and ports, in a minimal main config."""
    site = DOCS_CONF.read_text()
    for old, new in [
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("/srv/certdesk/var/", f"{data_dir}/"),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{backend};"),
    ]:
        assert old in site, f"{old!r} no longer in {DOCS_CONF.name}"
        site = site.replace(old, new)
    (prefix / "certdesk.conf").write_text(site)
    temp = prefix / "temp"
    temp.mkdir(exist_ok=True)
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    temps = "\n".join(
        f"    {kind}_temp_path {temp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / "access.log"};
{temps}
    proxy_bind {PROXY_ADDRESS};
    include {prefix / "certdesk.conf"};
}}
"""


def start_nginx(prefix: Path, config: str, port: int) -> subprocess.Popen[bytes]:
    conf = prefix / "nginx.conf"
    conf.write_text(config)
    nginx = nginx_binary()
    args = [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [*args, "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(proc, port)
    return proc


@dataclass
class Stack:
    nginx: str  # https://127.0.0.1:PORT
    backend: str  # http://127.0.0.1:PORT
    pki: Path
    certs: Path  # PEM files of the test's client certificates


def write_pair(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def other_ca_certificate(folder: Path) -> None:
    """A CA of the same name as ours and a leaf for a demo person: nothing of ours signed it."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certdesk Demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, "certdesk Demo Issuing CA"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Demo Approver")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    write_pair(folder, "other-ca", leaf, key)


def make_certificates(data_dir: Path, folder: Path) -> None:
    """valid (demo-0002's PKCS#12 from `certdesk init`), expired, revoked, other-ca."""
    p12 = pkcs12.load_key_and_certificates(
        (data_dir / "demo" / "demo-0002.p12").read_bytes(), DEMO_PASSPHRASE.encode()
    )
    assert isinstance(p12[0], ec.EllipticCurvePrivateKey) and p12[1] is not None
    write_pair(folder, "valid", p12[1], p12[0])
    config = Config().replace(paths={"data_dir": str(data_dir)})
    db = Database(config.database_url)
    attach(config, db, SystemClock(), "test")  # the desk's journal records these too
    try:
        past = FixedClock(dt.datetime.now(dt.UTC) - dt.timedelta(days=400))
        ctx = Context(config, db, past, actor="test")
        key = ec.generate_private_key(ec.SECP256R1())
        expired = Issuance(ctx).issue(OfficerEnrolment(ctx, "demo-0001", key.public_key()))
        write_pair(folder, "expired", expired.certificate, key)
        now = Context(config, db, actor="test")
        registry.add_person(now, "p-rev", "Revoked Holder", DEMO_UNIT[0], "rev@demo.example")
        key = ec.generate_private_key(ec.SECP256R1())
        revoked = Issuance(now).issue(OfficerEnrolment(now, "p-rev", key.public_key()))
        revoke(now, format(revoked.certificate.serial_number, "x"), "keyCompromise")
        write_pair(folder, "revoked", revoked.certificate, key)
    finally:
        db.dispose()
    other_ca_certificate(folder)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    nginx_binary()
    tmp = tmp_path_factory.mktemp("nginx")
    data_dir = tmp / "var"
    env = {
        **os.environ,
        "CERTDESK_PATHS_DATA_DIR": str(data_dir),
        "CERTDESK_SERVER_TRUSTED_PROXIES": f"{PROXY_ADDRESS}/32",
    }
    init = subprocess.run(
        [CERTDESK, "init"], cwd=tmp, env=env, capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, init.stderr
    certs = tmp / "certs"
    certs.mkdir()
    make_certificates(data_dir, certs)
    backend, port = free_port(), free_port()  # just before use (others pick free ports too)
    env |= {"CERTDESK_SERVER_PORT": str(backend), "CERTDESK_URLS_BASE": f"https://127.0.0.1:{port}"}
    server = subprocess.Popen(
        [CERTDESK, "serve", "--plain-http"],
        cwd=tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nginx: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(server, backend)
        nginx = start_nginx(tmp, nginx_config(tmp, data_dir, port, backend), port)
        yield Stack(
            f"https://127.0.0.1:{port}", f"http://127.0.0.1:{backend}", data_dir / "pki", certs
        )
    finally:
        for proc in (nginx, server):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)


def curl(stack: Stack, url: str, *args: str, cert: str | None = None) -> tuple[int, str]:
    """(status, body) of a browser-like GET (Accept: text/html), presenting `cert` if given."""
    assert shutil.which("curl"), "curl is not installed"
    tls = ["--cacert", str(stack.pki / "root.pem")] if url.startswith("https:") else []
    if cert:
        tls += [
            "--cert",
            str(stack.certs / f"{cert}.crt"),
            "--key",
            str(stack.certs / f"{cert}.key"),
        ]
    done = subprocess.run(
        ["curl", "-sS", "-H", "Accept: text/html", "-w", "\n%{http_code}", *tls, *args, url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def code_of(body: str) -> str:
    """The problem code a certdesk refusal page shows (nginx's own error pages have none)."""
    assert "nginx" not in body, body
    marker = 'data-code="'
    assert marker in body, body
    return body.split(marker, 1)[1].split('"', 1)[0]


def test_valid_certificate_sees_the_home_page(stack: Stack) -> None:
    status, body = curl(stack, f"{stack.nginx}/", cert="valid")
    assert status == 200, body
    assert "Demo Approver" in body and "Demo Finance Bureau" in body


def test_expired_certificate_gets_the_explanation_page(stack: Stack) -> None:
    status, body = curl(stack, f"{stack.nginx}/", cert="expired")
    assert status == 401
    assert code_of(body) == "login.expired"
    assert "can no longer be renewed" in body


def test_revoked_certificate_gets_the_reason(stack: Stack) -> None:
    status, body = curl(stack, f"{stack.nginx}/", cert="revoked")
    assert status == 401
    assert code_of(body) == "login.revoked" and "keyCompromise" in body


def test_no_certificate_gets_the_usb_key_page(stack: Stack) -> None:
    status, body = curl(stack, f"{stack.nginx}/")
    assert status == 401
    assert code_of(body) == "login.no_certificate" and "Insert your USB key" in body
    # a header of the same name sent to nginx is replaced, never passed on
    forged = f"X-SSL-Client-Cert: {quote((stack.certs / 'valid.crt').read_text())}"
    status, body = curl(stack, f"{stack.nginx}/", "-H", forged)
    assert status == 401 and code_of(body) == "login.no_certificate"


def test_certificate_from_another_ca_is_refused(stack: Stack) -> None:
    status, body = curl(stack, f"{stack.nginx}/", cert="other-ca")
    assert status == 401
    assert code_of(body) == "login.not_ours"


def test_forged_header_from_an_untrusted_address_is_not_believed(stack: Stack) -> None:
    forged = f"X-SSL-Client-Cert: {quote((stack.certs / 'valid.crt').read_text())}"
    status, body = curl(stack, f"{stack.backend}/", "-H", forged)
    assert status == 401 and code_of(body) == "login.no_certificate"
    # nor when the request claims to have been forwarded by the trusted proxy
    status, body = curl(
        stack, f"{stack.backend}/", "-H", forged, "-H", f"X-Forwarded-For: {PROXY_ADDRESS}"
    )
    assert status == 401 and code_of(body) == "login.no_certificate"
    # the same header from the trusted address is believed: the refusals above are not vacuous
    status, body = curl(stack, f"{stack.backend}/", "-H", forged, "--interface", PROXY_ADDRESS)
    assert status == 200 and "Demo Approver" in body
