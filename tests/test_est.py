"""EST (RFC 7030) with curl and openssl as the client, against `certdesk serve` under
libfaketime: cacerts, csrattrs, simpleenroll with a one-time code, simplereenroll with the
TLS client certificate (refused too early, accepted in the window)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from certdesk.store.tables import audit_log
from conftest import openssl
from softhsm import SoftHSM
from test_renew_faketime import FakeTimeDesk

EST = "/.well-known/est"


class Curl:
    def __init__(self, desk: FakeTimeDesk, tmp: Path) -> None:
        self.desk = desk
        self.tmp = tmp
        self.root = tmp / "var" / "pki" / "root.pem"

    def __call__(self, path: str, *args: str | Path, data: Path | None = None) -> tuple[int, bytes]:
        out = self.tmp / "curl.out"
        cmd = ["curl", "-sS", "--cacert", str(self.root), "-o", str(out), "-w", "%{http_code}"]
        if data is not None:
            cmd += ["-H", "Content-Type: application/pkcs10", "--data-binary", f"@{data}"]
        cmd += [*map(str, args), f"{self.desk.url}{EST}{path}"]
        done = subprocess.run(
            cmd, env=self.desk.at(self.desk.day), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout), out.read_bytes()

    def certificates(self, body: bytes) -> str:
        """The answer read the RFC's way: base64 → PKCS#7 certs-only → certificates."""
        (self.tmp / "answer.b64").write_bytes(body)
        decoded = openssl(
            "base64", "-d", "-in", self.tmp / "answer.b64", "-out", self.tmp / "a.der"
        )
        assert decoded.returncode == 0, decoded.stderr
        printed = openssl("pkcs7", "-inform", "DER", "-in", self.tmp / "a.der", "-print_certs")
        assert printed.returncode == 0, printed.stderr
        return printed.stdout


SAME_NAME = "/C=CN/O=certdesk Demo/OU=Demo Finance Bureau/CN=Demo Holder/serialNumber=demo-0001"


def new_csr(tmp: Path, name: str, subject: str = SAME_NAME) -> tuple[Path, Path]:
    key, der, b64 = tmp / f"{name}.key", tmp / f"{name}.der", tmp / f"{name}.b64"
    made = openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-subj", subject, "-outform", "DER", "-out", der,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert openssl("base64", "-in", der, "-out", b64).returncode == 0
    return key, b64


@pytest.mark.slow
def test_est_enrol_and_reenrol(tmp_path: Path, softhsm: SoftHSM) -> None:
    desk = FakeTimeDesk(tmp_path, softhsm)
    desk.ok("init")
    curl = Curl(desk, tmp_path)
    key, csr = new_csr(tmp_path, "first")
    code = json.loads(desk.ok("enroll-code", "create", "demo-0001", "--json").stdout)["code"]

    with desk.serving(0):
        status, body = curl("/cacerts")
        assert status == 200
        chain = curl.certificates(body)
        assert "certdesk Demo Issuing CA" in chain and "certdesk Demo Root CA" in chain
        status, body = curl("/csrattrs")
        assert status == 200 and body.strip()

        status, body = curl("/simpleenroll", "--user", "demo-0001:wrong-code", data=csr)
        assert status == 401 and json.loads(body)["code"] == "enrolcode.invalid"
        status, body = curl("/simpleenroll", "--user", f"demo-0001:{code}", data=csr)
        assert status == 200, body
        issued = curl.certificates(body)
        assert "CN=Demo Holder" in issued.replace(" = ", "=")
        cert = tmp_path / "first.pem"
        cert.write_text(issued[issued.index("-----BEGIN") :])
        status, again = curl("/simpleenroll", "--user", f"demo-0001:{code}", data=csr)
        assert status == 200 and again == body  # a retry gets the same certificate
        _, other = new_csr(tmp_path, "other")
        status, body = curl("/simpleenroll", "--user", f"demo-0001:{code}", data=other)
        assert status == 409 and json.loads(body)["code"] == "enrolcode.other_key"

        status, body = curl("/simplereenroll", data=csr)
        assert status == 401
        assert json.loads(body)["code"] == "est.client_certificate_required"
        _, csr2 = new_csr(tmp_path, "second", SAME_NAME)  # RFC 7030: the same subject
        status, body = curl("/simplereenroll", "--cert", cert, "--key", key, data=csr2)
        assert status == 403 and json.loads(body)["code"] == "renewal.too_early"

    with desk.serving(340):
        _, renamed = new_csr(tmp_path, "renamed", SAME_NAME.replace("Demo Holder", "Li Si"))
        status, body = curl("/simplereenroll", "--cert", cert, "--key", key, data=renamed)
        assert status == 403 and json.loads(body)["code"] == "enrolment.identity_change"
        status, body = curl("/simplereenroll", "--cert", cert, "--key", key, data=csr2)
        assert status == 200, body
        renewed = curl.certificates(body)
        assert "CN=Demo Holder" in renewed.replace(" = ", "=")
        certs = json.loads(desk.ok("cert", "list", "--person", "demo-0001", "--json").stdout)
        assert sorted(c["state"] for c in certs) == ["active", "superseded"]
        by_state = {c["state"]: c["serial"] for c in certs}
    # the audit log names the method that issued each: a re-enrolment is not a "renewal"
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'certdesk.db'}")
    with engine.connect() as conn:
        reserved = conn.execute(
            select(audit_log.c.object_id, audit_log.c.after).where(
                audit_log.c.action == "certificate.reserve"
            )
        ).all()
    engine.dispose()
    methods = {serial: json.loads(after)["method"] for serial, after in reserved}
    assert methods[by_state["superseded"]] == "est_code"
    assert methods[by_state["active"]] == "est_reenrol"
