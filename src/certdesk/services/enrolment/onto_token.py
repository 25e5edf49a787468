"""Officer enrolment onto a token: the key pair is made on the token, never outside it.

Steps (each reported through `progress`): check the registry, generate the key on the token,
sign a CSR on the token, issue, write the certificate next to its key. A refusal after the key
was made removes it again, so a refused enrolment leaves the token as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certdesk.domain.errors import CertdeskError
from certdesk.services.context import Context
from certdesk.services.enrolment import Issue, IssuedCertificate
from certdesk.services.enrolment.officer import OfficerEnrolment, check_enrolment
from certdesk.services.tokens import ensure_registered
from certdesk.token.csr import make_csr
from certdesk.token.device import find_token, open_session
from certdesk.token.inventory import mark_initial_pin
from certdesk.token.keys import generate_keypair, private_key_by_id
from certdesk.token.objects import delete_pair, write_certificate

# (English, Simplified Chinese): each step as it starts.
Progress = Callable[[str, str], None]


def _quiet(_en: str, _zh: str) -> None:
    return None


def enrol_onto_token(
    issue: Issue,
    ctx: Context,
    person_id: str,
    token_label: str,
    pin: str,
    progress: Progress = _quiet,
) -> IssuedCertificate:
    cfg = ctx.config.token
    device = find_token(cfg.module, label=token_label)
    progress(
        f"1/5 Token {device.label} (serial {device.serial}) found.",
        f"1/5 已找到 USB Key {device.label}（序列号 {device.serial}）。",
    )
    ensure_registered(ctx, device.serial, device.model)
    with ctx.db.read() as conn:  # refuse before a key is made on the token
        identity = check_enrolment(conn, ctx, person_id, device.serial)
    with open_session(device, pin) as session:
        progress(
            f"2/5 Generating a {cfg.key_type} key pair on the token…",
            f"2/5 正在 USB Key 内生成 {cfg.key_type} 密钥对…",
        )
        pair = generate_keypair(session, cfg.key_type, label=person_id)
        try:
            progress(
                "3/5 Signing the certificate request on the token…",
                "3/5 正在用 USB Key 签署证书请求…",
            )
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.name)])
            csr = make_csr(private_key_by_id(session, pair.key_id), pair.public_key, subject)
            progress("4/5 Issuing…", "4/5 正在签发证书…")
            der = csr.public_bytes(Encoding.DER)  # the server side re-verifies it
            issued = issue(OfficerEnrolment.from_csr(ctx, person_id, der, device.serial, "token"))
        except CertdeskError:
            delete_pair(session, pair.key_id)
            raise
        progress("5/5 Writing the certificate to the token…", "5/5 正在将证书写入 USB Key…")
        write_certificate(session, issued.certificate, pair.key_id, label=person_id)
        mark_initial_pin(session)  # handed out with the office's PIN: the holder must change it
    return issued
