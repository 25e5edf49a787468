"""Officer enrolment onto a token: the key pair is made on the token, never outside it.

Steps (each shown): check the registry, generate the key on the token, sign a CSR on the token,
issue, write the certificate next to its key. A refusal after the key was made removes it again,
so a refused enrolment leaves the token as it was.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certdesk.cli.output import say
from certdesk.domain.errors import CertdeskError
from certdesk.services.issuance import Issuance, IssuedCertificate
from certdesk.services.tokens import ensure_registered
from certdesk.token.csr import make_csr
from certdesk.token.device import find_token, open_session
from certdesk.token.inventory import mark_initial_pin
from certdesk.token.keys import generate_keypair, private_key_by_id
from certdesk.token.objects import delete_pair, write_certificate


def enrol_onto_token(
    issuance: Issuance, person_id: str, token_label: str, pin: str
) -> IssuedCertificate:
    cfg = issuance.ctx.config.token
    device = find_token(cfg.module, label=token_label)
    say(
        f"1/5 Token {device.label} (serial {device.serial}) found.",
        f"1/5 已找到 USB Key {device.label}（序列号 {device.serial}）。",
    )
    ensure_registered(issuance.ctx, device.serial, device.model)
    identity = issuance.precheck(person_id, device.serial)
    with open_session(device, pin) as session:
        say(
            f"2/5 Generating a {cfg.key_type} key pair on the token…",
            f"2/5 正在 USB Key 内生成 {cfg.key_type} 密钥对…",
        )
        pair = generate_keypair(session, cfg.key_type, label=person_id)
        try:
            say(
                "3/5 Signing the certificate request on the token…",
                "3/5 正在用 USB Key 签署证书请求…",
            )
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.name)])
            csr = make_csr(private_key_by_id(session, pair.key_id), pair.public_key, subject)
            say("4/5 Issuing…", "4/5 正在签发证书…")
            issued = issuance.enroll(person_id, csr.public_bytes(Encoding.DER), device.serial)
        except CertdeskError:
            delete_pair(session, pair.key_id)
            raise
        say("5/5 Writing the certificate to the token…", "5/5 正在将证书写入 USB Key…")
        write_certificate(session, issued.certificate, pair.key_id, label=person_id)
        mark_initial_pin(session)  # handed out with the office's PIN: the holder must change it
    return issued
