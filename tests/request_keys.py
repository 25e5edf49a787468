"""The holder's request key as a file key: tests and benchmarks speak the protocol without a token.

The holder's tool signs only with keys on a token (`certdesk.client.signed.TokenRequestKey`);
this is the same `RequestKey` for a key in memory, signed by PyJWT's own algorithms.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.api_jws import PyJWS


class FileRequestKey:
    """A private key held in memory (pyca/cryptography), signed by PyJWT itself."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        self.private_key = private_key
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            self.alg = "ES384" if private_key.curve.name == "secp384r1" else "ES256"
        else:
            self.alg = "RS256"
        self._algorithm = PyJWS().get_algorithm_by_name(self.alg)  # looked up once, not per call

    def sign(self, data: bytes) -> bytes:
        algorithm = self._algorithm
        signature: bytes = algorithm.sign(data, algorithm.prepare_key(self.private_key))
        return signature
