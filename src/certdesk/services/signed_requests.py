"""Requests signed by a certificate's key on the holder's token (JWS, RFC 7515, via PyJWT).

The TLS stack of a holder's browser cannot use the token's key for our renewal protocol, so the
holder's tool signs each request with it instead, as ACME does with account keys. The protected
header carries `kid` (the certificate's serial), a one-time `nonce` and the `action`, so a
signed request is good for one operation, once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.api_jws import PyJWS

from certdesk.domain.errors import CertdeskError

_JWS = PyJWS()


@dataclass(frozen=True)
class SignedRequest:
    """A signed request decoded once: its header can be read before its key is known; the
    signature is checked against the signed input later (`verify_signed_request`)."""

    token: str
    serial: str
    nonce: str
    action: str
    alg: str
    payload: bytes
    signature: bytes

    @property
    def signing_input(self) -> bytes:
        """What the signature covers: the header and payload segments as sent."""
        return self.token.encode().rsplit(b".", 1)[0]


def parse_signed_request(token: str) -> SignedRequest:
    """Decode the request once, without trusting it yet (its header names the certificate)."""
    try:
        decoded = _JWS.decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise CertdeskError("jws.malformed", detail=str(exc)) from None
    header = decoded["header"]
    missing = [k for k in ("alg", "kid", "nonce", "action") if not isinstance(header.get(k), str)]
    if missing:
        raise CertdeskError("jws.malformed", detail=f"header lacks {', '.join(missing)}")
    return SignedRequest(
        token,
        header["kid"],
        header["nonce"],
        header["action"],
        header["alg"],
        decoded["payload"],
        decoded["signature"],
    )


def claimed_serial(token: str) -> str | None:
    """The certificate serial a request's header names, unverified (for counting refusals)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def algorithm_for(certificate: x509.Certificate) -> str:
    """The one JWS algorithm accepted for a certificate's key (never `none` or HMAC)."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384"}.get(key.curve.name, "unsupported")
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    return "unsupported"


def verify_signed_request(
    request: SignedRequest, certificate: x509.Certificate, action: str, serial: str
) -> dict[str, Any]:
    """Check algorithm, signature and action; return the JSON payload."""
    expected = algorithm_for(certificate)
    if request.alg != expected:
        raise CertdeskError("jws.bad_algorithm", alg=request.alg, expected=expected)
    try:
        algorithm = _JWS.get_algorithm_by_name(expected)
    except NotImplementedError:
        raise CertdeskError("jws.malformed", detail=f"algorithm {expected} unsupported") from None
    key = algorithm.prepare_key(certificate.public_key())
    if not algorithm.verify(request.signing_input, key, request.signature):
        raise CertdeskError("jws.bad_signature", serial=serial)
    if request.action != action:
        raise CertdeskError("jws.wrong_action", got=request.action, expected=action)
    try:
        payload = json.loads(request.payload or b"{}")
    except ValueError as exc:
        raise CertdeskError("jws.malformed", detail=f"payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise CertdeskError("jws.malformed", detail="payload must be a JSON object")
    return payload
