"""Issuing-CA rollover: what it will do is shown first, the new generation issues, the old one
is retired by maintenance once its last certificate has expired (after a last CRL that lasts
beyond the last expiry), with a file key, a key generated on the HSM or one already there; the
console and the API do the same for the CA administrator."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from certdesk.ca.keys import KeyType
from certdesk.ca.pkcs11_signer import generate_hsm_key
from certdesk.domain.clock import FixedClock
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import AuthorityState
from certdesk.services import registry
from certdesk.services.authorities import get_authority, pki_dir
from certdesk.services.context import Context
from certdesk.services.enrolment import IssuedCertificate as Issued
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.maintenance import run_maintenance
from certdesk.services.pki_files import downloads
from certdesk.services.revocation import revoke
from certdesk.services.rollover import plan_rollover, retire_finished, roll_over
from certdesk.store.tables import audit_log
from conftest import openssl
from officers import open_office, sqlite_only
from softhsm import USER_PIN, SoftHSM
from test_pkcs11_signer import hsm_ca, uri


def issue(issuance: Issuance, person_id: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    return issuance.issue(OfficerEnrolment(issuance.ctx, person_id, key.public_key()))


def state_of(ctx: Context, name: str) -> AuthorityState:
    with ctx.db.read() as conn:
        info = get_authority(conn, name)
    assert info is not None
    return info.state


def audited(ctx: Context, action: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            select(audit_log.c.object_id, audit_log.c.actor).where(audit_log.c.action == action)
        ).all()
    return [(str(o), str(a)) for o, a in rows]


def test_rollover_then_retirement_after_the_last_expiry(issuance: Issuance, tmp_path: Path) -> None:
    ctx = issuance.ctx
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    start = clock.now()
    kept = issue(issuance, "p-001")  # valid until day 365
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    clock.advance(dt.timedelta(days=100))
    later = issue(issuance, "p-002")  # valid until day 465, revoked below
    clock.advance(dt.timedelta(days=100))

    plan = plan_rollover(ctx)
    assert (plan.name, plan.generation, plan.key) == ("issuing-2", 2, "file")
    assert "G2" in plan.subject
    (load,) = plan.retiring
    assert (load.name, load.valid_certificates) == ("issuing", 2)
    assert load.last_valid_until == later.certificate.not_valid_after_utc
    assert state_of(ctx, "issuing") is AuthorityState.ACTIVE  # the plan changed nothing

    g2 = roll_over(ctx)
    assert g2.name == "issuing-2" and state_of(ctx, "issuing") is AuthorityState.RETIRING
    assert audited(ctx, "authority.retiring") == [("issuing", "test")]
    pki = pki_dir(ctx)
    chain = x509.load_pem_x509_certificates((pki / "chain.pem").read_bytes())
    assert [c.subject for c in chain] == [
        g2.certificate.subject,
        get_authority_cert(ctx, "issuing").subject,
        get_authority_cert(ctx, "root").subject,
    ]
    assert "issuing-2.chain.pem" in downloads(ctx) and "issuing.chain.pem" in downloads(ctx)

    clock.advance(dt.timedelta(days=50))
    revoke(ctx, later.serial, "keyCompromise")
    assert retire_finished(ctx) == []  # p-001's certificate is still valid
    (load,) = [g for g in plan_rollover(ctx).retiring]
    assert load.name == "issuing-2"  # a second rollover would retire generation 2

    clock.current = start + dt.timedelta(days=366)  # p-001's certificate has expired
    report = run_maintenance(ctx)
    assert report.retired == ["issuing"]
    assert state_of(ctx, "issuing") is AuthorityState.RETIRED
    assert audited(ctx, "authority.retire") == [("issuing", "test")]
    assert run_maintenance(ctx).retired == []

    # its last CRL lists the revoked certificate and stays valid until that one expires
    crl_der = (pki / "issuing.crl").read_bytes()
    crl = x509.load_der_x509_crl(crl_der)
    assert crl.next_update_utc == later.certificate.not_valid_after_utc
    assert crl.get_revoked_certificate_by_serial_number(later.certificate.serial_number)
    assert "issuing.crl" in downloads(ctx)
    checked = openssl(
        "crl", "-inform", "DER", "-in", pki / "issuing.crl", "-CAfile", pki / "issuing.chain.pem",
        "-noout",
    )  # fmt: skip
    assert "verify OK" in checked.stdout + checked.stderr, checked.stderr
    # the retired CA leaves the client-CA file; its certificate stays downloadable
    chain = x509.load_pem_x509_certificates((pki / "chain.pem").read_bytes())
    assert len(chain) == 2 and chain[0].subject == g2.certificate.subject
    assert "issuing.crt" in downloads(ctx)
    registry.add_person(ctx, "p-003", "Wang Wu", "FIN", "wang@fin.example")
    assert issue(issuance, "p-003").issuer == "issuing-2"
    assert kept.issuer == "issuing"


def get_authority_cert(ctx: Context, name: str) -> x509.Certificate:
    with ctx.db.read() as conn:
        info = get_authority(conn, name)
    assert info is not None
    return info.certificate


@sqlite_only
def test_rollover_keys_on_the_hsm(softhsm: SoftHSM, tmp_path: Path, db_url: str) -> None:
    ctx = hsm_ca(softhsm, tmp_path, db_url)
    registry.add_unit(ctx, "FIN", "Finance Bureau")
    registry.add_person(ctx, "p-001", "Zhang San", "FIN", "zhang@fin.example")

    plan = plan_rollover(ctx)
    assert plan.key == "pkcs11, new key: pkcs11:token=ca-hsm;object=issuing-2"  # no PIN shown
    g2 = roll_over(ctx)
    assert g2.key_ref == uri("issuing-2") and g2.key_location == plan.key.split(": ")[1]
    # a key already on the HSM, named by its URI
    generate_hsm_key(softhsm.module, uri("spare"), KeyType.EC_P256).close()
    assert plan_rollover(ctx, uri("spare")).key.startswith("pkcs11, existing key:")
    g3 = roll_over(ctx, uri("spare"))
    assert g3.name == "issuing-3" and g3.key_ref == uri("spare")
    labels = sorted(o["label"] for o in softhsm.objects("ca-hsm") if o["kind"] == "Private Key")
    assert labels == ["issuing", "issuing-2", "root", "spare"]
    assert all(
        "never extractable" in o["Access"]
        for o in softhsm.objects("ca-hsm")
        if o["kind"] == "Private Key"
    )

    issued = issue(Issuance(ctx), "p-001")
    assert issued.issuer == "issuing-3"
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(issued.pem)
    pki = pki_dir(ctx)
    at = str(int(ctx.clock.now().timestamp()) + 60)
    checked = openssl(
        "verify", "-attime", at, "-CAfile", pki / "root.pem", "-untrusted",
        pki / "issuing-3.pem", leaf,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr

    # refused before anything is made: a key some CA already has, a malformed URI
    with pytest.raises(CertdeskError) as err:
        roll_over(ctx, uri("issuing-2"))
    assert err.value.code == "ca.key_in_use" and "issuing-2" in err.value.message("en")
    assert USER_PIN not in err.value.message("en")
    with pytest.raises(CertdeskError) as err:
        plan_rollover(ctx, "pkcs11:token=ca-hsm;bogus=1")
    assert err.value.code == "pkcs11.bad_uri"
    with ctx.db.read() as conn:
        assert get_authority(conn, "issuing-4") is None
    ctx.db.dispose()


def test_console_and_api_roll_over_for_the_ca_administrator(ctx: Context) -> None:
    office = open_office(ctx)
    ca = office.page("ca_admin")
    page = ca.get("/console/ca").text
    assert "Roll over the issuing CA" in page and 'id="valid-issuing">' in page

    def post(role: str, **fields: str) -> str:
        answer = office.page(role).post(
            "/console/ca/rollover",
            data={"csrf_token": office.csrf(role), **fields},
            follow_redirects=False,
        )
        return answer.text if answer.status_code != 303 else answer.headers["location"]

    # the first post shows what will happen and changes nothing
    shown = post("ca_admin")
    assert "Roll over the issuing CA?" in shown and "issuing-2" in shown
    listed = re.search(r'<ul id="retiring">(.*?)</ul>', shown, re.S)
    assert listed and "issuing" in listed.group(1) and "certificates still valid" in listed.group(1)
    with ctx.db.read() as conn:
        assert get_authority(conn, "issuing-2") is None
    # other roles are refused at both steps
    assert 'data-code="access.denied"' in post("ra", confirm="yes")
    assert post("ca_admin", confirm="yes") == "/console/ca?done=rollover"
    assert state_of(ctx, "issuing") is AuthorityState.RETIRING
    admin = office.principal("ca_admin").actor
    assert audited(ctx, "authority.add") == [("issuing-2", admin)]
    page = ca.get("/console/ca?done=rollover").text
    assert "New issuing CA generation made" in page and "retiring" in page

    # the API: one call; the administrator's certificate (generation 1) still logs in
    answer = office.api("ca_admin").post("/api/v1/ca/rollover")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["name"] == "issuing-3" and [g["name"] for g in body["retiring"]] == ["issuing-2"]
    listing = office.api("ca_admin").get("/api/v1/ca").json()
    states = {a["name"]: (a["generation"], a["state"]) for a in listing}
    assert states["issuing"] == (1, "retiring") and states["issuing-3"] == (3, "active")
    crl = office.api("ca_admin").post("/api/v1/crl", json={"issuer": "issuing-3"})
    assert crl.status_code == 201 and crl.json()["issuer"] == "issuing-3"
    refused = office.api("ra").post("/api/v1/ca/rollover")
    assert refused.status_code == 403
