"""CA keys in SoftHSM: same structures as file keys, accepted by openssl."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certdesk.ca.issuer import Authority, CertificateOrder
from certdesk.ca.keys import KeyType, generate_key
from certdesk.ca.pkcs11_signer import generate_hsm_key, open_hsm_key
from certdesk.ca.profiles import Profile, make_name
from certdesk.ca.signer import FileSigner, Signer
from certdesk.domain.clock import FixedClock
from certdesk.domain.errors import CertdeskError
from certdesk.services import registry
from certdesk.services.authorities import pki_dir
from certdesk.services.ca_hierarchy import init_hierarchy
from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.store.db import Database
from certdesk.store.migrate import upgrade
from conftest import make_config, openssl, openssl_verify
from softhsm import USER_PIN, SoftHSM

NOW = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


def uri(label: str) -> str:
    return f"pkcs11:token=ca-hsm;object={label}?pin-value={USER_PIN}"


def hsm_ca(softhsm: SoftHSM, tmp_path: Path, db_url: str) -> Context:
    """A CA whose root and issuing keys are made on a fresh SoftHSM token `ca-hsm`."""
    softhsm.init_token("ca-hsm")
    config = make_config(
        tmp_path,
        db_url,
        key_storage="pkcs11",
        pkcs11_module=softhsm.module,
        root_key_uri=uri("root"),
        issuing_key_uri=uri("issuing"),
    )
    db = Database(db_url)
    upgrade(db)
    ctx = Context(config, db, FixedClock(NOW), "test")
    init_hierarchy(ctx)
    return ctx


def self_signed(signer: Signer, serial: int = 7) -> x509.Certificate:
    name = make_name((("O", "certdesk test"), ("CN", "Test Root")))
    order = CertificateOrder(
        serial, name, signer.public_key, Profile.ROOT_CA, NOW, NOW + dt.timedelta(days=365)
    )
    return Authority(signer, None).issue(order)


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048])
def test_hsm_and_file_signers_give_identical_structures(
    softhsm: SoftHSM, key_type: KeyType, tmp_path: Path
) -> None:
    softhsm.init_token("ca-hsm")
    hsm = generate_hsm_key(softhsm.module, uri("root"), key_type)
    from_file = FileSigner(generate_key(key_type))
    a, b = self_signed(hsm), self_signed(from_file)
    pa = asn1_x509.Certificate.load(a.public_bytes(Encoding.DER))
    pb = asn1_x509.Certificate.load(b.public_bytes(Encoding.DER))
    assert pa["signature_algorithm"].dump() == pb["signature_algorithm"].dump()
    ta, tb = pa["tbs_certificate"], pb["tbs_certificate"]
    for field in ("version", "serial_number", "signature", "issuer", "validity", "subject"):
        assert ta[field].dump() == tb[field].dump(), field
    assert [e["extn_id"].native for e in ta["extensions"]] == [
        e["extn_id"].native for e in tb["extensions"]
    ]
    assert ta["subject_public_key_info"]["algorithm"].dump() == (
        tb["subject_public_key_info"]["algorithm"].dump()
    )
    path = tmp_path / "root.pem"
    path.write_bytes(a.public_bytes(Encoding.PEM))
    when = str(int((NOW + dt.timedelta(days=1)).timestamp()))
    checked = openssl("verify", "-attime", when, "-CAfile", path, path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # a CRL signed in the HSM verifies with openssl too
    crl = hsm.sign_crl(
        x509.CertificateRevocationListBuilder()
        .issuer_name(a.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    crl_path = tmp_path / "root.crl"
    crl_path.write_bytes(crl.public_bytes(Encoding.PEM))
    crl_ok = openssl("crl", "-in", crl_path, "-CAfile", path, "-noout")
    assert crl_ok.returncode == 0 and "verify OK" in crl_ok.stdout + crl_ok.stderr
    hsm.close()


def test_ca_hierarchy_in_hsm_issues_verifiable_certificates(
    softhsm: SoftHSM, tmp_path: Path, db_url: str
) -> None:
    ctx = hsm_ca(softhsm, tmp_path, db_url)
    registry.add_unit(ctx, "FIN", "Finance Bureau")
    registry.add_person(ctx, "p-001", "Zhang San", "FIN", "zhang@fin.example")
    key = ec.generate_private_key(ec.SECP256R1())
    issued = Issuance(ctx).issue(OfficerEnrolment(ctx, "p-001", key.public_key()))
    assert issued.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Zhang San"
    )
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(issued.pem)
    pki = pki_dir(ctx)
    checked = openssl_verify(pki, leaf, NOW + dt.timedelta(days=1))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the keys are in the HSM, marked sensitive and never extractable
    keys = [o for o in softhsm.objects("ca-hsm") if o["kind"] == "Private Key"]
    assert sorted(k["label"] for k in keys) == ["issuing", "root"]
    assert all("never extractable" in k["Access"] for k in keys)
    ctx.db.dispose()


def test_hsm_key_errors(softhsm: SoftHSM) -> None:
    softhsm.init_token("ca-hsm")
    with pytest.raises(CertdeskError) as err:
        open_hsm_key(softhsm.module, uri("absent"))
    assert err.value.code == "pkcs11.object_missing"
    with pytest.raises(CertdeskError) as err:
        open_hsm_key(softhsm.module, "pkcs11:token=ca-hsm;object=root?pin-value=0000")
    assert err.value.code == "pkcs11.wrong_pin"
    with pytest.raises(CertdeskError) as err:
        open_hsm_key(softhsm.module, "not-a-uri")
    assert err.value.code == "pkcs11.bad_uri"
    assert "0000" not in err.value.message("en")
