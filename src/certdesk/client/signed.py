"""Signed requests from the holder's key (JWS compact, made by PyJWT).

PyJWT signs with keys it holds; a token's key never leaves the token, so for it an `Algorithm`
whose `sign` calls the token is registered on a private `PyJWS` instance. The holder's tool signs
only with token keys; the tests' and benchmarks' file keys are `RequestKey`s too.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from jwt.algorithms import Algorithm
from jwt.api_jws import PyJWS


class RequestKey(Protocol):
    """A private key that signs requests: `alg` is its JWS algorithm."""

    alg: str

    def sign(self, data: bytes) -> bytes:
        """The JWS signature of `data` (ECDSA as raw r||s, RSA as PKCS#1 v1.5)."""
        ...


class TokenRequestKey:
    """A private key on the token (python-pkcs11 object)."""

    def __init__(self, private_key: Any) -> None:
        from certdesk.token.signing import ec_field_bits, sign_raw

        self._key = private_key
        self._sign = sign_raw
        is_ec = private_key.key_type.name == "EC"
        self.alg = ("ES384" if ec_field_bits(private_key) == 384 else "ES256") if is_ec else "RS256"

    def sign(self, data: bytes) -> bytes:
        return self._sign(self._key, data)


class _Delegated(Algorithm):
    """Hands the signing input to a `RequestKey` (only used for making requests)."""

    def prepare_key(self, key: Any) -> Any:
        return key

    def sign(self, msg: bytes, key: Any) -> bytes:
        signature: bytes = key.sign(msg)
        return signature

    def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
        raise NotImplementedError("the server verifies")

    @staticmethod
    def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:
        raise NotImplementedError

    @staticmethod
    def from_jwk(jwk: Any) -> Any:
        raise NotImplementedError


def sign_request(
    key: RequestKey, *, serial: str, nonce: str, action: str, payload: dict[str, Any]
) -> str:
    """A JWS for one `action` with certificate `serial`'s key, good once (the nonce)."""
    jws = PyJWS(algorithms=[])
    jws.register_algorithm(key.alg, _Delegated())
    return jws.encode(
        json.dumps(payload, separators=(",", ":")).encode(),
        key,  # type: ignore[arg-type]
        algorithm=key.alg,
        headers={"typ": None, "kid": serial, "nonce": nonce, "action": action},
    )
