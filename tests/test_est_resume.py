"""A killed EST enrolment never strands the person (issue 13): a retry with the same code and
the same key finishes it — returns the certificate already issued, or closes the reservation a
dead process left and issues — and never issues two; the same code with another key is refused.
In-process on SQLite and PostgreSQL, and against `certdesk serve` SIGKILLed at a crash point
(tests/crash_server.py) with curl as the EST client."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.ca.issuer import Authority, CertificateOrder
from certdesk.domain.clock import FixedClock
from certdesk.domain.errors import CertdeskError
from certdesk.services.audit_log import list_records, verify_chain
from certdesk.services.certificates import list_certificates
from certdesk.services.enrolment.est_code import enrol_with_code
from certdesk.services.enrolment_codes import create_code
from certdesk.services.issuance import IN_FLIGHT_GRACE, Issuance
from test_est import new_csr
from test_web import CERTDESK, free_port, serving, wait_for_port


def csr_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    return csr.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def states(issuance: Issuance, person: str = "p-001") -> list[str]:
    return sorted(c.state.value for c in list_certificates(issuance.ctx) if c.person_id == person)


def test_a_retry_returns_the_certificate_and_another_key_is_refused(issuance: Issuance) -> None:
    ctx = issuance.ctx
    code, _ = create_code(ctx, "p-001")
    csr = csr_der()
    first = enrol_with_code(ctx, issuance.issue, "p-001", code, csr)
    again = enrol_with_code(ctx, issuance.issue, "p-001", code, csr)  # the answer was lost
    assert again == first
    with pytest.raises(CertdeskError) as other:
        enrol_with_code(ctx, issuance.issue, "p-001", code, csr_der())
    assert other.value.code == "enrolcode.other_key" and other.value.status == 409
    assert other.value.message("zh-CN") != other.value.message("en")
    assert states(issuance) == ["active"]
    assert len(list_records(ctx, action="enrolment_code.use").records) == 1
    assert verify_chain(ctx).ok


class Killed(BaseException):
    """What a SIGKILL looks like to the code after it: nothing runs any more."""


class DyingAuthority(Authority):
    def issue(self, order: CertificateOrder) -> x509.Certificate:
        super().issue(order)
        raise Killed


def test_a_reservation_left_by_a_dead_process_is_closed_and_issued(issuance: Issuance) -> None:
    ctx = issuance.ctx
    code, _ = create_code(ctx, "p-001")
    csr = csr_der()
    real = issuance.authority
    dying = Issuance(ctx, DyingAuthority(real.signer, real.certificate, real.urls, real.hooks))
    with pytest.raises(Killed):
        enrol_with_code(ctx, dying.issue, "p-001", code, csr)
    assert states(issuance) == ["reserved"]  # code spent, nothing signed is stored
    with pytest.raises(CertdeskError) as other:
        enrol_with_code(ctx, issuance.issue, "p-001", code, csr_der())
    assert other.value.code == "enrolcode.other_key"
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.advance(IN_FLIGHT_GRACE + dt.timedelta(seconds=1))
    issued = enrol_with_code(ctx, issuance.issue, "p-001", code, csr)
    assert states(issuance) == ["abandoned", "active"]
    assert enrol_with_code(ctx, issuance.issue, "p-001", code, csr) == issued
    assert states(issuance) == ["abandoned", "active"]
    assert verify_chain(ctx).ok


def _curl_enrol(root: Path, url: str, code: str, csr: Path) -> tuple[int, bytes, int]:
    out = csr.with_suffix(".answer")
    done = subprocess.run(
        ["curl", "-sS", "--cacert", root, "-o", out, "-w", "%{http_code}", "--user",
         f"demo-0001:{code}", "-H", "Content-Type: application/pkcs10",
         "--data-binary", f"@{csr}", f"{url}/.well-known/est/simpleenroll"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    body = out.read_bytes() if out.exists() else b""
    return done.returncode, body, int(done.stdout or 0)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_sign", "after_record"])
def test_est_enrolment_killed_then_retried_with_curl(tmp_path: Path, point: str) -> None:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CERTDESK_PATHS_DATA_DIR": str(tmp_path / "var"),
        "CERTDESK_SERVER_PORT": str(port),
        "CERTDESK_URLS_BASE": url,
    }

    def certdesk(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [CERTDESK, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done

    certdesk("init")
    code = json.loads(certdesk("enroll-code", "create", "demo-0001", "--json").stdout)["code"]
    root = tmp_path / "var" / "pki" / "root.pem"
    _key, csr = new_csr(tmp_path, "first")
    crashing = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "crash_server.py"), point, "serve"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(crashing, port)
        curl_rc, _, status = _curl_enrol(root, url, code, csr)
        assert curl_rc != 0 and status == 0  # the connection died without an answer
        assert crashing.wait(timeout=30) == -9
    finally:
        if crashing.poll() is None:
            crashing.kill()
            crashing.wait()
    listed = json.loads(certdesk("cert", "list", "--person", "demo-0001", "--json").stdout)
    before = {"after_sign": ["reserved"], "after_record": ["active"]}[point]
    assert [c["state"] for c in listed] == before

    with serving(tmp_path, env, port):
        curl_rc, body, status = _curl_enrol(root, url, code, csr)
        assert curl_rc == 0 and status == 200, body
        answer = tmp_path / "answer.der"
        answer.write_bytes(base64.decodebytes(body))
        printed = subprocess.run(
            ["openssl", "pkcs7", "-inform", "DER", "-in", answer, "-print_certs"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        delivered = x509.load_pem_x509_certificate(printed.stdout.encode())
        _, again, status = _curl_enrol(root, url, code, csr)
        assert status == 200 and base64.decodebytes(again) == answer.read_bytes()
        _, other_csr = new_csr(tmp_path, "other")
        _, refused, status = _curl_enrol(root, url, code, other_csr)
        assert status == 409 and json.loads(refused)["code"] == "enrolcode.other_key"
        assert json.loads(refused)["messages"]["zh-CN"]

    listed = json.loads(certdesk("cert", "list", "--person", "demo-0001", "--json").stdout)
    active = [c for c in listed if c["state"] == "active"]
    assert len(active) == 1 and int(active[0]["serial"], 16) == delivered.serial_number
    if point == "after_record":
        assert len(listed) == 1  # the certificate recorded before the kill, delivered now
    else:
        assert sorted(c["state"] for c in listed) == ["abandoned", "active"]
    assert "intact" in certdesk("audit", "verify").stdout
