"""The holder's renewal against a token, step by step (the notice's renewal page, rule 7).

Read the current certificate from the token; show the registry's data read-only; make a new
key on the token; send a CSR signed on the token inside a request signed by the current key;
write the new certificate next to its key; confirm with the new key; remove the old pair.

If the answer is lost (server unreachable), the new key stays on the token and `pickup`
completes later without a second certificate. A refusal removes the new key again.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.client.server import Server, ServerRefusal
from certdesk.client.signed import TokenRequestKey
from certdesk.domain.errors import CertdeskError
from certdesk.token.csr import make_csr
from certdesk.token.device import Device
from certdesk.token.keys import generate_keypair, private_key_by_id
from certdesk.token.objects import (
    TokenCertificate,
    delete_pair,
    list_certificates,
    write_certificate,
)

Say = Callable[[str, str], None]
ShowProfile = Callable[[dict[str, Any]], None]

RENEW = "/api/v1/renewal"
PROFILE = "/api/v1/renewal/profile"
PICKUP = "/api/v1/renewal/pickup"
CONFIRM = "/api/v1/renewal/confirm"
PIN_CHANGED = "/api/v1/tokens/pin-changed"


@dataclass(frozen=True)
class RenewalOutcome:
    serial: str
    certificate: x509.Certificate
    superseded: str


def serial_of(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def same_key_type(cert: x509.Certificate) -> str:
    """The new key is of the current key's type (ec-p256, ec-p384, rsa-2048, rsa-3072)."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec-p384" if key.curve.name == "secp384r1" else "ec-p256"
    assert isinstance(key, rsa.RSAPublicKey)
    return f"rsa-{key.key_size}"


class TokenRenewal:
    """One logged-in session on the holder's token, talking to one server."""

    def __init__(self, server: Server, device: Device, session: Any, say: Say) -> None:
        self.server = server
        self.device = device
        self.session = session
        self.say = say

    def _key(self, key_id: bytes) -> TokenRequestKey:
        return TokenRequestKey(private_key_by_id(self.session, key_id))

    def _signed(
        self, path: str, cert: TokenCertificate, action: str, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.server.signed(
            path, self._key(cert.key_id), serial_of(cert.certificate), action, payload
        )

    def certificates(self) -> list[TokenCertificate]:
        found = list_certificates(self.session)
        if not found:
            raise CertdeskError("token.no_certificate", label=self.device.label)
        return sorted(found, key=lambda c: c.certificate.not_valid_before_utc, reverse=True)

    def current(self) -> tuple[TokenCertificate, dict[str, Any], str | None]:
        """The token's certificate the server holds active (else the newest), with its profile.

        A superseded certificate next to an active one is what an interrupted renewal leaves
        (confirmed, answer lost): it is removed now, as the renewal would have done.
        """
        profiles = [(cert, self._signed(PROFILE, cert, "profile")) for cert in self.certificates()]
        active = [p for p in profiles if p[1]["certificate"]["state"] == "active"]
        if not active:
            return (*profiles[0], None)
        removed = None
        for cert, profile in profiles:
            if profile["certificate"]["state"] == "superseded":
                delete_pair(self.session, cert.key_id)
                removed = serial_of(cert.certificate)
                self.say(
                    f"Removed the superseded certificate {removed}.",
                    f"已删除被替换的旧证书 {removed}。",
                )
        return (*active[0], removed)

    def renew(self, show: ShowProfile) -> RenewalOutcome:
        self.say("1/7 Reading the certificate on the token…", "1/7 正在读取 USB Key 中的证书…")
        self.say("2/7 Fetching your registered data…", "2/7 正在获取您的登记信息…")
        current, profile, finished = self.current()
        if finished is not None:  # an earlier renewal had completed: nothing more to do
            return RenewalOutcome(serial_of(current.certificate), current.certificate, finished)
        show(profile)
        renewal = profile["renewal"]
        if renewal["pending"]:
            self.say(
                "A renewed certificate is already waiting; installing it.",
                "已有待安装的更新证书，正在安装。",
            )
            return self.pickup()
        if not renewal["allowed"]:
            raise ServerRefusal(renewal["refusal"], 403, renewal["messages"])
        key_type = same_key_type(current.certificate)
        self.say(
            f"3/7 Generating a new {key_type} key pair on the token…",
            f"3/7 正在 USB Key 内生成新的 {key_type} 密钥对…",
        )
        pair = generate_keypair(self.session, key_type, label=profile["person_id"])
        try:
            self.say("4/7 Signing the request on the token…", "4/7 正在用 USB Key 签署更新请求…")
            csr = make_csr(
                private_key_by_id(self.session, pair.key_id), pair.public_key, x509.Name([])
            )
            der = csr.public_bytes(Encoding.DER)
            self.say("5/7 Sending the renewal request…", "5/7 正在提交更新请求…")
            answer = self._signed(
                RENEW,
                current,
                "renew",
                {"csr": base64.urlsafe_b64encode(der).rstrip(b"=").decode()},
            )
        except CertdeskError as exc:
            if exc.code != "client.server_unreachable":
                delete_pair(self.session, pair.key_id)  # refused: leave the token as it was
            raise
        return self._install(answer, current, new_key_id=pair.key_id, label=profile["person_id"])

    def pickup(self) -> RenewalOutcome:
        """Finish a renewal whose certificate was issued but not installed (no second one)."""
        last: CertdeskError | None = None
        for cert in self.certificates():
            try:
                answer = self._signed(PICKUP, cert, "pickup")
            except ServerRefusal as exc:
                last = exc
                continue
            if answer["serial"] == serial_of(cert.certificate):
                continue  # this is the renewed certificate itself
            label = cert.label or "certdesk"
            return self._install(answer, cert, new_key_id=None, label=label)
        raise last or CertdeskError("token.no_certificate", label=self.device.label)

    def _install(
        self,
        answer: dict[str, Any],
        old: TokenCertificate,
        new_key_id: bytes | None,
        label: str,
    ) -> RenewalOutcome:
        cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
        key_id = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        if new_key_id is not None and new_key_id != key_id:
            # An earlier attempt's certificate came back: its key is already on the token.
            delete_pair(self.session, new_key_id)
        private_key_by_id(self.session, key_id)  # the key must be here, or nothing is written
        self.say("6/7 Writing the new certificate to the token…", "6/7 正在将新证书写入 USB Key…")
        on_token = {serial_of(c.certificate) for c in list_certificates(self.session)}
        if serial_of(cert) not in on_token:
            write_certificate(self.session, cert, key_id, label=label)
        self.say("7/7 Confirming the installation…", "7/7 正在确认安装…")
        confirmed = self.server.signed(CONFIRM, self._key(key_id), serial_of(cert), "confirm")
        delete_pair(self.session, old.key_id)
        self.say(
            "The old certificate and its key were removed from the token.",
            "旧证书及其密钥已从 USB Key 中删除。",
        )
        return RenewalOutcome(serial_of(cert), cert, confirmed["superseded"])

    def report_pin_changed(self) -> str:
        current, _profile, _finished = self.current()
        answer = self._signed(PIN_CHANGED, current, "pin-changed")
        token: str = answer["token"]
        return token
