"""Enrolment onto a SoftHSM token: key made on the token, certificate written next to it.

Checked with independent clients: pkcs11-tool lists the objects, openssl verifies the chain,
pkilint the profile.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import TokenState
from certdesk.services import registry
from certdesk.services.authorities import pki_dir
from certdesk.services.enrolment.onto_token import enrol_onto_token
from certdesk.services.issuance import Issuance
from certdesk.services.tokens import list_tokens
from certdesk.token.csr import make_csr
from certdesk.token.device import find_token, open_session
from certdesk.token.keys import generate_keypair, private_key_by_id
from certdesk.token.objects import list_certificates
from certdesk.token.pin import change_pin, unblock
from conftest import openssl, openssl_verify
from softhsm import SO_PIN, USER_PIN, SoftHSM


@pytest.fixture
def token_issuance(issuance: Issuance, softhsm: SoftHSM) -> Issuance:
    softhsm.init_token("zhang")
    return issuance


def test_enrol_onto_token(token_issuance: Issuance, softhsm: SoftHSM, tmp_path: Path) -> None:
    issued = enrol_onto_token(token_issuance.issue, token_issuance.ctx, "p-001", "zhang", USER_PIN)
    objects = softhsm.objects("zhang")
    keys = [o for o in objects if o["kind"] == "Private Key"]
    certs = [o for o in objects if o["kind"] == "Certificate"]
    assert len(keys) == 1 and len(certs) == 1, objects
    assert keys[0]["ID"] == certs[0]["ID"]
    assert keys[0]["label"] == certs[0]["label"] == "p-001"
    access = keys[0]["Access"]
    assert "sensitive" in access and "never extractable" in access, access
    assert "local" in access  # generated on the token
    # the certificate on the token is the issued one, and it chains to our root
    with open_session(find_token(softhsm.module, label="zhang"), USER_PIN) as session:
        (on_token,) = list_certificates(session)
    assert on_token.certificate == issued.certificate
    ski = issued.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert on_token.key_id == ski.value.digest
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(issued.pem)
    pki = pki_dir(token_issuance.ctx)
    verified = openssl_verify(pki, leaf, dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # the registry knows the token and its one keeper
    (token,) = list_tokens(token_issuance.ctx)
    assert token.state is TokenState.ISSUED and token.keeper_id == "p-001"


def test_csr_from_token_verifies_with_openssl(softhsm: SoftHSM, tmp_path: Path) -> None:
    softhsm.init_token("csr")
    with open_session(find_token(softhsm.module, label="csr"), USER_PIN) as session:
        for key_type in ("ec-p256", "ec-p384", "rsa-2048"):
            pair = generate_keypair(session, key_type, label=key_type)
            name = x509.Name.from_rfc4514_string("CN=Zhang San")
            csr = make_csr(private_key_by_id(session, pair.key_id), pair.public_key, name)
            assert csr.is_signature_valid
            path = tmp_path / f"{key_type}.csr"
            path.write_bytes(csr.public_bytes(Encoding.PEM))
            checked = openssl("req", "-in", path, "-verify", "-noout")
            assert checked.returncode == 0, checked.stderr
            assert "verify OK" in checked.stdout + checked.stderr


def test_token_of_another_keeper_refused_and_token_unchanged(
    token_issuance: Issuance, softhsm: SoftHSM
) -> None:
    ctx = token_issuance.ctx
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    enrol_onto_token(token_issuance.issue, token_issuance.ctx, "p-001", "zhang", USER_PIN)
    before = softhsm.list_objects("zhang")
    with pytest.raises(CertdeskError) as err:
        enrol_onto_token(token_issuance.issue, token_issuance.ctx, "p-002", "zhang", USER_PIN)
    assert err.value.code == "token.issued_to_other"
    assert softhsm.list_objects("zhang") == before  # no stray key left behind


def test_refusal_after_key_generation_removes_the_key(
    token_issuance: Issuance, softhsm: SoftHSM
) -> None:
    enrol_onto_token(token_issuance.issue, token_issuance.ctx, "p-001", "zhang", USER_PIN)
    softhsm.init_token("spare")
    with pytest.raises(CertdeskError) as err:
        enrol_onto_token(token_issuance.issue, token_issuance.ctx, "p-001", "spare", USER_PIN)
    assert err.value.code == "person.has_active_certificate"
    assert softhsm.objects("spare") == []


def test_wrong_pin_and_missing_token_and_module(token_issuance: Issuance, softhsm: SoftHSM) -> None:
    with pytest.raises(CertdeskError) as err:
        enrol_onto_token(token_issuance.issue, token_issuance.ctx, "p-001", "zhang", "000000")
    assert err.value.code == "pkcs11.wrong_pin"
    assert "tries" in err.value.message("en") and "次" in err.value.message("zh-CN")
    with pytest.raises(CertdeskError) as err:
        enrol_onto_token(
            token_issuance.issue, token_issuance.ctx, "p-001", "no-such-token", USER_PIN
        )
    assert err.value.code == "pkcs11.no_token"
    with pytest.raises(CertdeskError) as err:
        find_token("/nonexistent/libpkcs11.so", label="zhang")
    assert err.value.code == "pkcs11.module_missing"


def test_change_pin_and_unblock(softhsm: SoftHSM) -> None:
    softhsm.init_token("pins")
    device = find_token(softhsm.module, label="pins")
    change_pin(device, USER_PIN, "654321")
    with pytest.raises(CertdeskError) as err, open_session(device, USER_PIN):
        pass
    assert err.value.code == "pkcs11.wrong_pin"
    with open_session(device, "654321"):
        pass
    unblock(device, SO_PIN, "111111")
    with open_session(device, "111111"):
        pass
    with pytest.raises(CertdeskError) as err:
        unblock(device, "00000000", "222222")
    assert err.value.code == "pkcs11.wrong_pin"
