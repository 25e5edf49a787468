"""A client certificate from another CA, presented with curl to `certdesk serve` itself and to
nginx in front (tests/test_nginx.py): what the holder gets in each shape.

certdesk's own TLS (Python's ssl) can ask for a client certificate without requiring one
(CERT_OPTIONAL) and can skip the time checks, but it cannot accept a certificate it does not
trust (OpenSSL fails the handshake, and Python offers no verify callback to say otherwise). So
the "not ours" page is reached behind nginx (`ssl_verify_client optional` passes the failed
certificate on), and the embedded server refuses at the handshake. This test pins that down,
so the README can say so and a change of either side shows up here.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from certdesk.services.demo import DEMO_PASSPHRASE
from live_portal import LivePortal, live_portal
from test_nginx import other_ca_certificate, write_pair

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    with live_portal(tmp_path_factory.mktemp("foreign")) as served:
        yield served


def curl(portal: LivePortal, name: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("curl"), "curl is not installed"
    folder = portal.home / "certs"
    return subprocess.run(
        [
            "curl",
            "-sS",
            "-H",
            "Accept: text/html",
            "-w",
            "\n%{http_code}",
            "--cacert",
            str(portal.root_pem),
            "--cert",
            str(folder / f"{name}.crt"),
            "--key",
            str(folder / f"{name}.key"),
            f"{portal.base}/",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_another_cas_certificate_is_refused_at_the_embedded_handshake(portal: LivePortal) -> None:
    folder = portal.home / "certs"
    folder.mkdir(exist_ok=True)
    other_ca_certificate(folder)
    key, cert, _ = pkcs12.load_key_and_certificates(
        portal.demo_p12("demo-0002").read_bytes(), DEMO_PASSPHRASE.encode()
    )
    assert cert is not None
    write_pair(folder, "valid", cert, key)  # type: ignore[arg-type]
    ours = curl(portal, "valid")
    assert ours.returncode == 0 and ours.stdout.endswith("\n200"), ours.stderr
    foreign = curl(portal, "other-ca")
    # TLS 1.3: the client has finished its side when the server refuses, so curl reports an
    # empty reply (52) or a receive error (56); TLS 1.2 would give a handshake error (35)
    assert foreign.returncode in (35, 52, 56), (foreign.returncode, foreign.stderr)
    assert foreign.stdout.endswith("\n000")  # no HTTP answer at all: no page, not "not ours"
    # the same with openssl s_client: the server closes the connection during the handshake
    # (uvicorn's asyncio TLS drops it without an alert) and no HTTP answer comes
    folder = portal.home / "certs"
    alert = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{portal.port}",
            "-CAfile",
            str(portal.root_pem),
            "-cert",
            str(folder / "other-ca.crt"),
            "-key",
            str(folder / "other-ca.key"),
            "-quiet",
        ],
        input="GET / HTTP/1.0\r\nAccept: text/html\r\n\r\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    said = (alert.stdout + alert.stderr).lower()
    # the server drops the connection after the handshake: a clean EOF or a reset (errno 104),
    # whichever reaches the client first; never an HTTP answer
    assert ("unexpected eof" in said or "errno=104" in said) and "http/1" not in said, said
    served = (portal.home / "serve.log").read_text()
    assert served.count('"GET / HTTP/1.1"') == 1  # only the request with our certificate
