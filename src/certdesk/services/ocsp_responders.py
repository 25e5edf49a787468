"""Delegated OCSP responders (RFC 6960 §4.2.2.2): for each CA still answering for its
certificates (the root, and the issuing CAs active or retiring), a short-lived certificate with
extended key usage OCSPSigning and id-pkix-ocsp-nocheck, signed by that CA, whose key signs the
responses. The key is PKCS#8 encrypted with the CA passphrase and kept in the database (even when
the CA key is on an HSM), so every process on every machine signs with the current one whichever
process issued it. The CA key signs only these certificates, never a response. A responder with
less than half its life left is replaced (recorded and audited).

A responder made before keys were kept in the database names its key file (`key_ref`): the first
process that loads it with the file at hand copies the encrypted file into the database.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.ca.issuer import Authority, CertificateOrder
from certdesk.ca.keys import (
    KeyType,
    SigningKey,
    decrypt_key,
    encrypt_key,
    generate_key,
    read_key_file,
)
from certdesk.ca.ocsp import CANONICAL_HASH, Question, ResponderKey, issuer_hashes
from certdesk.ca.profiles import Profile, make_name
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import AuthorityState, CertState
from certdesk.domain.validity import CLOCK_SKEW
from certdesk.services.authorities import (
    ISSUING,
    ROOT,
    AuthorityInfo,
    list_authorities,
    load_signer,
    passphrase,
)
from certdesk.services.context import Context
from certdesk.services.issuance import lint_hooks
from certdesk.store import certificates as cert_store
from certdesk.store import ocsp as ocsp_store
from certdesk.store.db import AnyRow

ANSWERING = (AuthorityState.ACTIVE, AuthorityState.RETIRING)


@dataclass(frozen=True)
class Responder:
    """One issuer's current responder, ready to sign."""

    issuer: AuthorityInfo
    serial: str
    key: ResponderKey

    @functools.cached_property
    def _hashes(self) -> tuple[bytes, bytes]:
        return issuer_hashes(self.issuer.certificate, CANONICAL_HASH)

    def question(self, serial: int) -> Question:
        """The canonical question for one of its issuer's serials (the issuer's hashes are
        computed once, not for each of a batch of new certificates)."""
        return Question(CANONICAL_HASH.name, *self._hashes, serial, None)


def answering_issuers(ctx: Context) -> list[AuthorityInfo]:
    """The CAs whose certificates the responder answers for: the root (for the issuing CAs'
    certificates, which `ssl_ocsp on` in nginx checks too) and the issuing CAs not retired."""
    with ctx.db.read() as conn:
        infos = list_authorities(conn)
    return [i for i in infos if i.role in (ROOT, ISSUING) and i.state in ANSWERING]


def ensure_responders(ctx: Context) -> list[str]:
    """Give every answering issuer a responder with at least half its life left, not revoked
    (an officer may revoke a compromised one) and whose key is in the database (a pre-0019 key
    file is adopted; one no longer there is replaced); returns the serials issued now."""
    now = ctx.clock.now().replace(microsecond=0)
    with ctx.db.read() as conn:
        newest = {row.issuer: row for row in ocsp_store.responders(conn)}
        revoked = {
            row.serial
            for row in ocsp_store.responders(conn)
            if (found := cert_store.get(conn, row.serial)) is not None
            and found.state != CertState.ACTIVE.value
        }
    issued = []
    for info in answering_issuers(ctx):
        row = newest.get(info.name)
        if (
            row is None
            or row.serial in revoked
            or now >= row.not_before + (row.not_after - row.not_before) / 2
            or (row.key_pem is None and not _adopt_file(ctx, row))
        ):
            issued.append(_issue(ctx, info, now))
    return issued


def _issue(ctx: Context, info: AuthorityInfo, now: dt.datetime) -> str:
    key_type = KeyType.parse(info.key_type)
    key = generate_key(key_type)
    serial = x509.random_serial_number()
    hexserial = format(serial, "x")
    key_pem = encrypt_key(key, passphrase(ctx))
    ca = ctx.config.ca
    names = info.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = str(names[0].value) if names else info.name
    subject = make_name(
        (("C", ca.country), ("O", ca.organisation), ("CN", f"{cn} OCSP Responder"[:64]))
    )
    not_after = now + dt.timedelta(days=ctx.config.ocsp.responder_days)
    authority = Authority(load_signer(ctx, info), info.certificate, None, lint_hooks(ctx))
    certificate = authority.issue(
        CertificateOrder(
            serial, subject, key.public_key(), Profile.OCSP_SIGNING, now - CLOCK_SKEW, not_after
        )
    )
    der = certificate.public_bytes(Encoding.DER)
    with ctx.db.write() as conn:
        cert_store.insert_signed(
            conn,
            {
                "serial": hexserial,
                "issuer": info.name,
                "profile": Profile.OCSP_SIGNING.value,
                "state": CertState.ACTIVE.value,
                "subject": certificate.subject.rfc4514_string(),
                "not_before": certificate.not_valid_before_utc,
                "not_after": certificate.not_valid_after_utc,
                "fingerprint": hashlib.sha256(der).hexdigest(),
                "der": der,
                "reserved_at": now,
                "issued_at": now,
            },
        )
        ocsp_store.insert_responder(
            conn,
            {
                "serial": hexserial,
                "issuer": info.name,
                "key_pem": key_pem,
                "certificate_der": der,
                "not_before": certificate.not_valid_before_utc,
                "not_after": certificate.not_valid_after_utc,
                "created_at": now,
            },
        )
        ctx.record(
            conn,
            now,
            "ocsp.responder_issue",
            "authority",
            info.name,
            after={"serial": hexserial, "not_after": not_after.isoformat()},
        )
    return hexserial


def load_responders(ctx: Context) -> dict[str, Responder]:
    """The newest responder of each answering issuer, keys loaded (by issuer id)."""
    issuers = {i.name: i for i in answering_issuers(ctx)}
    with ctx.db.read() as conn:
        newest = {row.issuer: row for row in ocsp_store.responders(conn)}
    secret = passphrase(ctx)
    found: dict[str, Responder] = {}
    for name, row in newest.items():
        if name not in issuers:
            continue
        info = issuers[name]
        certificate = x509.load_der_x509_certificate(row.certificate_der)
        key = _responder_key(ctx, row, secret)
        found[name] = Responder(info, row.serial, ResponderKey(info.certificate, certificate, key))
    return found


def _responder_key(ctx: Context, row: AnyRow, secret: bytes) -> SigningKey:
    """The responder's key from its row; a pre-0019 responder's from its file, adopted."""
    if row.key_pem is not None:
        return decrypt_key(bytes(row.key_pem), secret, f"OCSP responder {row.serial}")
    pem = read_key_file(Path(row.key_ref))
    key = decrypt_key(pem, secret, row.key_ref)  # the right passphrase before it is shared
    with ctx.db.write() as conn:
        ocsp_store.adopt_key(conn, row.serial, pem)
    return key


def _adopt_file(ctx: Context, row: AnyRow) -> bool:
    """Copy a pre-0019 responder's key file into the database; False if it is not here."""
    try:
        _responder_key(ctx, row, passphrase(ctx))
    except CertdeskError as exc:
        if exc.code != "ca.key_missing":
            raise
        return False
    return True
