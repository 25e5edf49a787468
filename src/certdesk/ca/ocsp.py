"""OCSP (RFC 6960) on the wire, built and parsed by pyca/cryptography only: reading a request,
signing a response with a delegated responder key, the unsuccessful answers, and the canonical
GET request a relying party sends (RFC 5019: SHA-1 CertID, no nonce), whose URL names the file
nginx serves."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from certdesk.ca.keys import SigningKey, key_type_of, signature_hash
from certdesk.domain.lifecycle import RevocationStatus as CertStatus
from certdesk.domain.states import RevocationReason

CANONICAL_HASH = hashes.SHA1()  # RFC 5019 §2.1.1: what GET clients and nginx's ssl_ocsp send
MAX_REQUEST = 8192  # bytes; a single-certificate request is ~100


_STATUS = {
    CertStatus.GOOD: ocsp.OCSPCertStatus.GOOD,
    CertStatus.REVOKED: ocsp.OCSPCertStatus.REVOKED,
    CertStatus.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN,
}


def _error(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


MALFORMED = _error(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
UNAUTHORIZED = _error(ocsp.OCSPResponseStatus.UNAUTHORIZED)
INTERNAL_ERROR = _error(ocsp.OCSPResponseStatus.INTERNAL_ERROR)


class MalformedRequest(ValueError):
    """Not an OCSP request certdesk can read (answered with malformedRequest)."""


@dataclass(frozen=True, slots=True)
class Question:
    """What one request asks: which issuer (by hashes), which serial, with which hash, and the
    nonce to echo if any."""

    algorithm: str  # hash name, e.g. "sha1"
    name_hash: bytes
    key_hash: bytes
    serial: int
    nonce: bytes | None


_HASHES: dict[str, hashes.HashAlgorithm] = {
    h.name: h for h in (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512())
}


def parse_request(der: bytes) -> Question:
    """The one CertID of a request (several in one request are not supported: malformed)."""
    if len(der) > MAX_REQUEST:
        raise MalformedRequest("request too large")
    try:
        request = ocsp.load_der_ocsp_request(der)
        algorithm = request.hash_algorithm.name
        nonce: bytes | None = None
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                nonce = extension.value.nonce
        return Question(
            algorithm,
            request.issuer_name_hash,
            request.issuer_key_hash,
            request.serial_number,
            nonce,
        )
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType) as exc:
        raise MalformedRequest(str(exc)) from None
    except Exception as exc:  # cryptography's unsupported-algorithm errors and the like
        raise MalformedRequest(type(exc).__name__) from None


def supported_hash(name: str) -> hashes.HashAlgorithm | None:
    return _HASHES.get(name)


def issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of a CA for CertIDs hashed with `algorithm`: the hash of
    its DER subject and of its subjectPublicKey's bits (RFC 6960 §4.1.1)."""
    key = issuer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    elif isinstance(key, rsa.RSAPublicKey):
        bits = key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    else:
        raise ValueError(f"unsupported CA key {type(key).__name__}")

    def digest(data: bytes) -> bytes:
        h = hashes.Hash(algorithm)
        h.update(data)
        return h.finalize()

    return digest(issuer.subject.public_bytes()), digest(bits)


@dataclass(frozen=True)
class Answer:
    """What a certificate's status is, as signed into a response."""

    status: CertStatus
    revoked_at: dt.datetime | None = None
    reason: RevocationReason | None = None


@dataclass(frozen=True)
class ResponderKey:
    """A delegated responder: its certificate (signed by `issuer`) and its key."""

    issuer: x509.Certificate
    certificate: x509.Certificate
    key: SigningKey

    def sign(
        self,
        question: Question,
        answer: Answer,
        this_update: dt.datetime,
        next_update: dt.datetime,
        *,
        with_nonce: bool = False,
    ) -> bytes:
        """A successful, signed basic response for one CertID (the request's hash algorithm and
        hashes echoed), the responder's certificate included, its id by key hash."""
        algorithm = _HASHES[question.algorithm]
        reason = None
        if answer.reason is not None and answer.reason is not RevocationReason.UNSPECIFIED:
            reason = x509.ReasonFlags(answer.reason.value)
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                question.name_hash,
                question.key_hash,
                question.serial,
                algorithm,
                _STATUS[answer.status],
                this_update,
                next_update,
                answer.revoked_at if answer.status is CertStatus.REVOKED else None,
                reason if answer.status is CertStatus.REVOKED else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.certificate)
            .certificates([self.certificate])
        )
        if with_nonce and question.nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(question.nonce), critical=False)
        response = builder.sign(self.key, signature_hash(key_type_of(self.key)))
        return response.public_bytes(Encoding.DER)


def canonical_question(issuer: x509.Certificate, serial: int) -> Question:
    """The request most relying parties send for `serial` (SHA-1 CertID, no nonce)."""
    name_hash, key_hash = issuer_hashes(issuer, CANONICAL_HASH)
    return Question(CANONICAL_HASH.name, name_hash, key_hash, serial, None)


def request_der(question: Question) -> bytes:
    """The DER request for `question` (without a nonce), as openssl and nginx encode it."""
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        question.name_hash, question.key_hash, question.serial, _HASHES[question.algorithm]
    )
    return builder.build().public_bytes(Encoding.DER)


def file_name(request: bytes) -> str:
    """What nginx's decoded `$uri` holds after `/ocsp/` for the canonical GET of `request`:
    the plain base64 (it contains `/`, so nginx needs `merge_slashes off`)."""
    return base64.b64encode(request).decode()
