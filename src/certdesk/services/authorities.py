"""The CAs as a set: what each is, choosing the issuer, trusting what they signed.

The root is self-signed; the issuing CA is signed by the root (`services/ca_hierarchy.py` makes
them). Each authority has an id (`name`), a role (root / issuing), a generation and a state
(active / retiring / retired): a rollover adds a new issuing generation and retires the old one
without touching what it issued. Certificates, key references and CRL counters live in the
`authorities` table. Issuance picks its issuer with `pick_issuer`; login and renewal check a
presented certificate against every trusted issuer by its authority key identifier (`Issuers`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection

from certdesk.ca.issuer import Authority, LintHook
from certdesk.ca.keys import (
    KeyType,
    read_encrypted_key,
)
from certdesk.ca.profiles import Profile, PublicationUrls
from certdesk.ca.signer import FileSigner, Signer
from certdesk.domain.errors import CertdeskError
from certdesk.domain.fingerprints import sha256_fingerprint
from certdesk.domain.pkcs11uri import Pkcs11Uri
from certdesk.domain.states import AuthorityState
from certdesk.services.context import Context
from certdesk.store import authorities as authority_store

ROOT, ISSUING = "root", "issuing"
RELOAD_EVERY = 60.0  # seconds between reloads for the same unknown key id


@dataclass(frozen=True)
class AuthorityInfo:
    name: str
    subject: str
    key_type: str
    key_ref: str
    certificate: x509.Certificate
    crl_number: int
    role: str = ISSUING
    generation: int = 1
    state: AuthorityState = AuthorityState.ACTIVE
    key_id: str = ""

    @property
    def key_location(self) -> str:
        """The key's file, or its HSM URI without the PIN: what may be shown."""
        if self.key_ref.startswith("pkcs11:"):
            return str(Pkcs11Uri.parse(self.key_ref).without_pin())
        return self.key_ref

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, as `openssl x509 -fingerprint -sha256` prints it."""
        return sha256_fingerprint(self.certificate.public_bytes(Encoding.DER))


def root_fingerprint(ctx: Context) -> str | None:
    """The root CA's fingerprint, for pages that tell people to install the root (None before
    `certdesk ca init`)."""
    with ctx.db.read() as conn:
        root = get_authority(conn, ROOT)
    return None if root is None else root.fingerprint


def key_id_of(certificate: x509.Certificate) -> str:
    """The CA's subjectKeyIdentifier (hex): what its certificates name as their issuer's key."""
    ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return ski.value.digest.hex()


def _info(row: Any) -> AuthorityInfo:
    return AuthorityInfo(
        row.name,
        row.subject,
        row.key_type,
        row.key_ref,
        x509.load_der_x509_certificate(row.certificate_der),
        row.crl_number,
        row.role,
        row.generation,
        AuthorityState(row.state),
        row.key_id,
    )


def pki_dir(ctx: Context) -> Path:
    return ctx.config.data_dir / "pki"


def passphrase(ctx: Context) -> bytes:
    """The CA key passphrase from config, environment or the passphrase file."""
    ca = ctx.config.ca
    if ca.passphrase:
        return ca.passphrase.encode()
    path = Path(ca.passphrase_file) if ca.passphrase_file else ctx.config.data_dir / "ca/passphrase"
    if path.exists():
        return path.read_bytes().strip()
    raise CertdeskError("ca.no_passphrase")


def get_authority(conn: Connection, name: str) -> AuthorityInfo | None:
    row = authority_store.get(conn, name)
    return None if row is None else _info(row)


def list_authorities(conn: Connection) -> list[AuthorityInfo]:
    """Every CA, roots first, then by generation; refused before `certdesk ca init`."""
    found = [_info(row) for row in authority_store.every(conn)]
    if not found:
        raise CertdeskError("ca.not_initialised")
    return found


@dataclass(frozen=True)
class IssuerChoice:
    """What choosing an issuer needs, without parsing certificates at every reservation."""

    name: str
    key_type: str
    generation: int


def active_issuers(conn: Connection) -> list[IssuerChoice]:
    return [IssuerChoice(*row) for row in authority_store.active_issuers(conn)]


def pick_issuer(choices: Sequence[IssuerChoice], profile: Profile, key_type: KeyType) -> str:
    """The active issuing CA for an end-entity `profile` and key type: one whose key is of the
    same family (EC for EC) if there is one, the newest generation first."""
    if profile.is_ca or not choices:
        raise CertdeskError("ca.not_initialised")
    wanted_ec = key_type.is_ec

    def rank(choice: IssuerChoice) -> tuple[bool, int]:
        return (KeyType(choice.key_type).is_ec == wanted_ec, choice.generation)

    return max(choices, key=rank).name


class Issuers:
    """The issuing CAs this process trusts (active and retiring), by key id; keep one per
    process. A certificate is ours if one of them signed it: the AKI says which to ask."""

    def __init__(self, infos: Sequence[AuthorityInfo], ctx: Context | None = None) -> None:
        self.ctx = ctx
        self._missed: dict[str, float] = {}  # key id -> when it last made us reload
        self._take(infos)

    def _take(self, infos: Sequence[AuthorityInfo]) -> None:
        trusted = (AuthorityState.ACTIVE, AuthorityState.RETIRING)
        self.by_key_id = {i.key_id: i for i in infos if i.role == ISSUING and i.state in trusted}
        self.by_name = {i.name: i for i in infos}

    @classmethod
    def load(cls, ctx: Context) -> Issuers:
        with ctx.db.read() as conn:
            return cls(list_authorities(conn), ctx)

    def issuer_of(self, certificate: x509.Certificate) -> AuthorityInfo:
        """The trusted CA that signed `certificate`; ValueError or InvalidSignature if none.

        An unknown key id reloads the set (once a minute per key id), so a generation added by
        another process is trusted without a restart (a retired one stops being trusted at the
        next reload).
        """
        try:
            aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        except x509.ExtensionNotFound:
            raise ValueError("no authority key identifier") from None
        key_id = (aki.value.key_identifier or b"").hex()
        if key_id not in self.by_key_id and self._may_reload(key_id):
            assert self.ctx is not None
            with self.ctx.db.read() as conn:
                self._take(list_authorities(conn))
        info = self.by_key_id.get(key_id)
        if info is None:
            raise ValueError("not issued by a CA this server trusts")
        certificate.verify_directly_issued_by(info.certificate)
        return info

    def _may_reload(self, key_id: str) -> bool:
        """Reload for a key id not asked about in the last minute: a stranger's certificate
        presented at every request does not cost a database read each time."""
        if self.ctx is None:
            return False
        now = time.monotonic()
        if len(self._missed) > 1024:
            self._missed.clear()
        if now - self._missed.get(key_id, -RELOAD_EVERY) < RELOAD_EVERY:
            return False
        self._missed[key_id] = now
        return True

    def named(self, name: str) -> AuthorityInfo:
        """An authority by id (reloading once if it was added after this set was loaded)."""
        if name not in self.by_name and self.ctx is not None:
            with self.ctx.db.read() as conn:
                self._take(list_authorities(conn))
        return self.by_name[name]

    def trusted(self) -> list[AuthorityInfo]:
        """The trusted issuing CAs (active and retiring), newest generation first."""
        return sorted(self.by_key_id.values(), key=lambda i: -i.generation)

    def root(self) -> AuthorityInfo:
        return max((i for i in self.by_name.values() if i.role == ROOT), key=lambda i: i.generation)


def require_authority(conn: Connection, name: str) -> AuthorityInfo:
    info = get_authority(conn, name)
    if info is None:
        raise CertdeskError("ca.not_initialised")
    return info


def publication_urls(ctx: Context, issuer: str) -> PublicationUrls:
    """Where certificates issued by `issuer` point: its CRL, OCSP and certificate (the first
    issuing CA's URLs are configurable; the others' are named after their id), and its delta
    CRLs while `[crl] delta` is on."""
    delta = delta_crl_url(ctx, issuer) if ctx.config.crl.delta else None
    if issuer == ISSUING:
        return PublicationUrls(
            ctx.config.url("crl"), ctx.config.url("ocsp"), ctx.config.url("ca_issuers"), delta
        )
    base = ctx.config.base_url
    return PublicationUrls(
        f"{base}/pki/{issuer}.crl", ctx.config.url("ocsp"), f"{base}/pki/{issuer}.crt", delta
    )


def delta_crl_url(ctx: Context, issuer: str) -> str:
    """Where `issuer`'s delta CRL is published (`/pki/<id>-delta.crl`, `[urls] delta_crl` for
    the first issuing CA)."""
    if issuer == ISSUING:
        return ctx.config.url("delta_crl")
    return f"{ctx.config.base_url}/pki/{issuer}-delta.crl"


def load_signer(ctx: Context, info: AuthorityInfo) -> Signer:
    if info.key_ref.startswith("pkcs11:"):
        from certdesk.ca.pkcs11_signer import open_hsm_key

        return open_hsm_key(ctx.config.ca.pkcs11_module, info.key_ref)
    return FileSigner(read_encrypted_key(Path(info.key_ref), passphrase(ctx)))


def load_authority(
    ctx: Context, name: str = ISSUING, hooks: tuple[LintHook, ...] = ()
) -> Authority:
    """The signing side of an initialised CA, ready for the issuing path."""
    with ctx.db.read() as conn:
        info = require_authority(conn, name)
    return Authority(load_signer(ctx, info), info.certificate, publication_urls(ctx, name), hooks)
