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


@dataclass(frozen=True)
class SignedRequest:
    """The parts of a signed request that can be read before its key is known."""

    token: str
    serial: str
    nonce: str
    action: str
    alg: str


def parse_signed_request(token: str) -> SignedRequest:
    """Read the protected header without trusting it yet (it names the certificate)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise CertdeskError("jws.malformed", detail=str(exc)) from None
    missing = [k for k in ("alg", "kid", "nonce", "action") if not isinstance(header.get(k), str)]
    if missing:
        raise CertdeskError("jws.malformed", detail=f"header lacks {', '.join(missing)}")
    return SignedRequest(token, header["kid"], header["nonce"], header["action"], header["alg"])


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
    key = certificate.public_key()
    if request.alg != expected:
        raise CertdeskError("jws.bad_algorithm", alg=request.alg, expected=expected)
    try:
        decoded = PyJWS(algorithms=[expected]).decode_complete(
            request.token,
            key=key,  # type: ignore[arg-type]  # EC or RSA, checked by algorithm_for
            algorithms=[expected],
        )
    except jwt.InvalidSignatureError:
        raise CertdeskError("jws.bad_signature", serial=serial) from None
    except jwt.PyJWTError as exc:
        raise CertdeskError("jws.malformed", detail=str(exc)) from None
    if request.action != action:
        raise CertdeskError("jws.wrong_action", got=request.action, expected=action)
    try:
        payload = json.loads(decoded["payload"] or b"{}")
    except ValueError as exc:
        raise CertdeskError("jws.malformed", detail=f"payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise CertdeskError("jws.malformed", detail="payload must be a JSON object")
    return payload
