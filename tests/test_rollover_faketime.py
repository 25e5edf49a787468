"""Issuing-CA rollover as a whole process under libfaketime: certificates issued under
generation 1, `certdesk ca rollover --yes`, generation-1 holders log in (curl, mutual TLS to
`certdesk serve`), renew with the holder's `certdesk renew` (SoftHSM token) and re-enrol over
EST, and get generation-2 certificates that `openssl verify` accepts; the generation-1 CRL keeps
answering for generation-1 serials; `certdesk serve`'s maintenance retires generation 1 once
its last certificate has expired, and its last CRL stays downloadable."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from certdesk.store.tables import audit_log
from conftest import openssl
from softhsm import USER_PIN, SoftHSM
from test_cli import assert_refused
from test_est import SAME_NAME, Curl, new_csr
from test_renew_faketime import DAY0, FakeTimeDesk

LI_SI = SAME_NAME.replace("Demo Holder", "Li Si").replace("demo-0001", "p-002")
WANG_WU = SAME_NAME.replace("Demo Holder", "Wang Wu").replace("demo-0001", "p-003")


def at(day: int) -> str:
    """`openssl verify -attime` for noon of `day`."""
    return str(int((DAY0 + dt.timedelta(days=day, hours=2)).timestamp()))


def issuer_of(pem: Path) -> str:
    shown = openssl("x509", "-in", pem, "-noout", "-issuer", "-nameopt", "RFC2253")
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()


def login(desk: FakeTimeDesk, cert: Path, key: Path) -> tuple[int, str]:
    """The portal's home page with a client certificate, as a browser would ask for it."""
    done = subprocess.run(
        [
            "curl", "-sS", "--cacert", str(desk.home / "var/pki/root.pem"), "--cert", str(cert),
            "--key", str(key), "-H", "Accept: text/html", "-w", "\n%{http_code}", f"{desk.url}/",
        ],
        env=desk.at(desk.day), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def ocsp_status(desk: FakeTimeDesk, issuer: Path, cert: Path) -> str:
    """What certdesk's OCSP responder says of `cert`, asked and checked with openssl (request
    made by `openssl ocsp`, POSTed by curl, answer verified against the root) at the desk's day."""
    req, resp = desk.home / "ocsp.req", desk.home / "ocsp.resp"
    env = desk.at(desk.day)
    made = openssl("ocsp", "-issuer", issuer, "-cert", cert, "-no_nonce", "-reqout", req)
    assert made.returncode == 0, made.stderr
    posted = subprocess.run(
        [
            "curl", "-sS", "--cacert", str(desk.home / "var/pki/root.pem"), "-o", str(resp),
            "-H", "Content-Type: application/ocsp-request", "--data-binary", f"@{req}",
            f"{desk.url}/ocsp",
        ],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert posted.returncode == 0, posted.stderr
    read = subprocess.run(
        [
            "openssl", "ocsp", "-respin", str(resp), "-issuer", str(issuer), "-cert", str(cert),
            "-CAfile", str(desk.home / "var/pki/root.pem"),
        ],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "Response verify OK" in read.stderr, read.stderr
    return read.stdout.split(f"{cert}: ", 1)[1].split()[0]


def fetch(desk: FakeTimeDesk, name: str) -> tuple[int, bytes]:
    """A download under /pki/, as a relying party fetches it (the URL written in certificates)."""
    out = desk.home / "fetched"
    done = subprocess.run(
        [
            "curl", "-sS", "--cacert", str(desk.home / "var/pki/root.pem"), "-o", str(out),
            "-w", "%{http_code}", f"{desk.url}/pki/{name}",
        ],
        env=desk.at(desk.day), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout), out.read_bytes()


def crl_serials(path: Path, chain: Path) -> str:
    """The CRL's text once openssl has checked its signature against `chain`."""
    checked = openssl("crl", "-inform", "DER", "-in", path, "-CAfile", chain, "-noout", "-text")
    assert checked.returncode == 0 and "verify OK" in checked.stderr, checked.stderr
    return checked.stdout.replace(":", "").upper()


@pytest.mark.slow
def test_issuing_rollover_through_a_year(tmp_path: Path, softhsm: SoftHSM) -> None:
    desk = FakeTimeDesk(tmp_path, softhsm)
    pki = tmp_path / "var/pki"
    desk.ok("init")
    for person, name in (("p-002", "Li Si"), ("p-003", "Wang Wu")):
        desk.ok(
            "person", "add", person, "--name", name, "--unit", "DEMO", "--email", "x@demo.example"
        )
    softhsm.init_token("alice")
    desk.ok("enroll", "demo-0001", "--token-label", "alice", "--pin", USER_PIN)
    alice_old = json.loads(desk.ok("cert", "list", "--person", "demo-0001", "--json").stdout)
    li_key, _ = new_csr(tmp_path, "li", LI_SI)  # a CSR asks for the registry's identity
    openssl("req", "-new", "-key", li_key, "-subj", LI_SI, "-out", tmp_path / "li.csr")
    li_cert = tmp_path / "li.pem"
    desk.ok("enroll", "p-002", "--csr", str(tmp_path / "li.csr"), "--out", str(li_cert))
    wang_key, _ = new_csr(tmp_path, "wang", WANG_WU)  # never renews: generation 1 stays
    openssl("req", "-new", "-key", wang_key, "-subj", WANG_WU, "-out", tmp_path / "wang.csr")
    wang_cert = tmp_path / "wang.pem"
    desk.ok("enroll", "p-003", "--csr", str(tmp_path / "wang.csr"), "--out", str(wang_cert))
    assert "Issuing CA" in issuer_of(li_cert) and "G2" not in issuer_of(li_cert)
    with desk.serving(0):
        desk.ok("connect", desk.url, "--yes")

    # the rollover: shown first, refused without a terminal unless --yes
    desk.day = 1
    asked = desk.run("ca", "rollover")
    assert_refused(asked, 2, "cli.confirmation_needed", "--yes")
    shown = " ".join(asked.stderr.split())
    assert "issuing-2 (generation 2)" in shown and "issuing (generation 1)" in shown
    assert re.search(r"\d+ certificate\(s\) still valid, the last until 2027-12-0", shown), shown
    rolled = json.loads(desk.ok("ca", "rollover", "--yes", "--json").stdout)
    assert rolled["name"] == "issuing-2" and rolled["retiring"] == ["issuing"]
    states = {a["name"]: a["state"] for a in json.loads(desk.ok("ca", "show", "--json").stdout)}
    assert states == {"root": "active", "issuing": "retiring", "issuing-2": "active"}

    with desk.serving(340):
        # a generation-1 holder logs in to the portal
        status, page = login(desk, li_cert, li_key)
        assert status == 200 and "Li Si" in page
        # the token holder renews with the holder's tool and gets a generation-2 certificate
        renewed = desk.renew("alice")
        assert renewed.returncode == 0, renewed.stderr
        result = json.loads(renewed.stdout)
        assert result["superseded"] == alice_old[0]["serial"]
        alice_new = tmp_path / "alice-new.pem"
        alice_new.write_text(desk.ok("cert", "show", result["serial"], "--pem").stdout)
        assert "G2" in issuer_of(alice_new)
        curl = Curl(desk, tmp_path)
        status, chain = fetch(desk, "issuing-2.chain.pem")
        assert status == 200
        (tmp_path / "g2-chain.pem").write_bytes(chain)
        verified = openssl(
            "verify", "-attime", at(340), "-CAfile", pki / "root.pem", "-untrusted",
            tmp_path / "g2-chain.pem", alice_new,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stderr
        # EST: cacerts hands out both generations; re-enrolment with the generation-1
        # certificate answers a generation-2 one, which logs in in its turn
        status, body = curl("/cacerts")
        listed = curl.certificates(body)
        assert "Issuing CA G2" in listed and listed.count("subject=") == 3
        _, li_csr = new_csr(tmp_path, "li-2", LI_SI)
        status, body = curl("/simplereenroll", "--cert", li_cert, "--key", li_key, data=li_csr)
        assert status == 200, body
        issued = curl.certificates(body)
        li_new = tmp_path / "li-new.pem"
        li_new.write_text(issued[issued.index("-----BEGIN") :])
        assert "G2" in issuer_of(li_new)
        status, page = login(desk, li_new, tmp_path / "li-2.key")
        assert status == 200 and "Li Si" in page
        status, page = login(desk, li_cert, li_key)
        assert status == 401 and "superseded" in page.lower()  # the old one is replaced

        # the generation-1 CRL still answers for generation-1 serials
        desk.ok("crl", "publish", "--issuer", "issuing")
        status, crl = fetch(desk, "issuing.crl")
        assert status == 200 and crl == (pki / "issuing.crl").read_bytes()
        listed = crl_serials(pki / "issuing.crl", pki / "issuing.chain.pem")
        assert alice_old[0]["serial"].upper() in listed
        li_old_serial = openssl("x509", "-in", li_cert, "-noout", "-serial").stdout
        assert li_old_serial.strip().split("=")[1].lstrip("0") in listed
        # and so does its OCSP responder: Li's replaced certificate is revoked, Wang's good
        assert ocsp_status(desk, pki / "issuing.pem", li_cert) == "revoked"
        assert ocsp_status(desk, pki / "issuing.pem", wang_cert) == "good"
        assert ocsp_status(desk, pki / "issuing-2.pem", li_new) == "good"
        # generation 1 is not retired while Wang's certificate is valid
        assert json.loads(desk.ok("maintenance", "--json").stdout)["retired"] == []

    # past the last generation-1 expiry: the server's maintenance retires it at start
    with desk.serving(367):
        status, crl = fetch(desk, "issuing.crl")
        assert status == 200
    states = {a["name"]: a["state"] for a in json.loads(desk.ok("ca", "show", "--json").stdout)}
    assert states["issuing"] == "retired" and states["issuing-2"] == "active"
    (tmp_path / "last.crl").write_bytes(crl)
    crl_serials(tmp_path / "last.crl", pki / "issuing.chain.pem")
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'certdesk.db'}")
    with engine.connect() as conn:
        retired = conn.execute(
            select(audit_log.c.object_id).where(audit_log.c.action == "authority.retire")
        ).all()
    engine.dispose()
    assert [r[0] for r in retired] == ["issuing"]
