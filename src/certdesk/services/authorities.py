"""The CAs as a set: creating the hierarchy, choosing the issuer, trusting what they signed.

The root is self-signed; the issuing CA is signed by the root. Each authority has an id (`name`),
a role (root / issuing), a generation and a state (active / retiring / retired): a rollover adds
a new issuing generation and retires the old one without touching what it issued. Certificates,
key references and CRL counters live in the `authorities` table; copies for download are written
under `<data_dir>/pki/`. Issuance picks its issuer with `pick_issuer`; login and renewal check a
presented certificate against every trusted issuer by its authority key identifier (`Issuers`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection

from certdesk.ca.issuer import Authority, CertificateOrder, LintHook
from certdesk.ca.keys import (
    KeyType,
    generate_key,
    read_encrypted_key,
    write_encrypted_key,
)
from certdesk.ca.profiles import Profile, PublicationUrls, make_name
from certdesk.ca.signer import FileSigner, Signer
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import AuthorityState, CertState
from certdesk.domain.validity import CLOCK_SKEW, add_years
from certdesk.services.context import Context
from certdesk.services.files import atomic_write
from certdesk.services.lifecycle import Move, transition
from certdesk.store import audit
from certdesk.store import authorities as authority_store
from certdesk.store import certificates as cert_store

ROOT, ISSUING = "root", "issuing"


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

        An unknown key id reloads the set once, so a generation added by another process is
        trusted without a restart (a retired one stops being trusted at the next reload).
        """
        try:
            aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        except x509.ExtensionNotFound:
            raise ValueError("no authority key identifier") from None
        key_id = (aki.value.key_identifier or b"").hex()
        if key_id not in self.by_key_id and self.ctx is not None:
            with self.ctx.db.read() as conn:
                self._take(list_authorities(conn))
        info = self.by_key_id.get(key_id)
        if info is None:
            raise ValueError("not issued by a CA this server trusts")
        certificate.verify_directly_issued_by(info.certificate)
        return info

    def named(self, name: str) -> AuthorityInfo:
        """An authority by id (reloading once if it was added after this set was loaded)."""
        if name not in self.by_name and self.ctx is not None:
            with self.ctx.db.read() as conn:
                self._take(list_authorities(conn))
        return self.by_name[name]

    def newest(self) -> AuthorityInfo:
        """The active issuing CA of the highest generation (what EST `cacerts` hands out)."""
        active = [i for i in self.by_key_id.values() if i.state is AuthorityState.ACTIVE]
        return max(active, key=lambda i: i.generation)

    def root(self) -> AuthorityInfo:
        return max((i for i in self.by_name.values() if i.role == ROOT), key=lambda i: i.generation)


def require_authority(conn: Connection, name: str) -> AuthorityInfo:
    info = get_authority(conn, name)
    if info is None:
        raise CertdeskError("ca.not_initialised")
    return info


def publication_urls(ctx: Context, issuer: str) -> PublicationUrls:
    """Where certificates issued by `issuer` point: its CRL, OCSP and certificate (the first
    issuing CA's URLs are configurable; the others' are named after their id)."""
    if issuer == ISSUING:
        return PublicationUrls(
            ctx.config.url("crl"), ctx.config.url("ocsp"), ctx.config.url("ca_issuers")
        )
    base = ctx.config.urls.base.rstrip("/")
    return PublicationUrls(
        f"{base}/pki/{issuer}.crl", ctx.config.url("ocsp"), f"{base}/pki/{issuer}.crt"
    )


def _new_signer(ctx: Context, name: str, key_type: KeyType) -> tuple[Signer, str]:
    """Create the CA key where the configuration says; returns the signer and its reference."""
    ca = ctx.config.ca
    if ca.key_storage == "pkcs11":
        from certdesk.ca.pkcs11_signer import generate_hsm_key

        uri = ca.root_key_uri if name == ROOT else ca.issuing_key_uri
        if not uri:
            raise CertdeskError("config.invalid", detail=f"ca.{name}_key_uri is empty")
        return generate_hsm_key(ca.pkcs11_module, uri, key_type), uri
    if ca.key_storage != "file":
        raise CertdeskError("config.invalid", detail=f"ca.key_storage {ca.key_storage!r}")
    key = generate_key(key_type)
    path = ctx.config.data_dir / "ca" / f"{name}.key"
    if path.exists():
        # Left by an init that crashed before its transaction committed: that key never signed
        # anything on record. It is kept (renamed), never overwritten.
        stamp = ctx.clock.now().strftime("%Y%m%dT%H%M%S")
        path.rename(path.with_name(f"{name}.key.unused-{stamp}"))
    write_encrypted_key(key, path, passphrase(ctx))
    return FileSigner(key), str(path)


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


def init_hierarchy(ctx: Context) -> tuple[AuthorityInfo, AuthorityInfo]:
    """Create root and issuing CA (refused if a root exists: nothing is overwritten)."""
    ca = ctx.config.ca
    with ctx.db.read() as conn:
        existing = get_authority(conn, ROOT)
    if existing is not None:
        raise CertdeskError("ca.already_initialised", name=existing.subject)
    key_type = KeyType.parse(ca.key_type)
    now = ctx.clock.now().replace(microsecond=0)
    root_name = make_name((("C", ca.country), ("O", ca.organisation), ("CN", ca.root_name)))
    issuing_name = make_name((("C", ca.country), ("O", ca.organisation), ("CN", ca.issuing_name)))
    root_signer, root_ref = _new_signer(ctx, ROOT, key_type)
    issuing_signer, issuing_ref = _new_signer(ctx, ISSUING, key_type)
    root_cert = Authority(root_signer, None).issue(
        CertificateOrder(
            x509.random_serial_number(),
            root_name,
            root_signer.public_key,
            Profile.ROOT_CA,
            now - CLOCK_SKEW,
            add_years(now, ca.root_years),
        )
    )
    issuing_cert = _sign_issuing(ctx, root_signer, root_cert, issuing_name, issuing_signer, now)
    rows = [
        (ROOT, root_cert, root_ref, Profile.ROOT_CA),
        (ISSUING, issuing_cert, issuing_ref, Profile.ISSUING_CA),
    ]
    with ctx.db.write() as conn:
        if get_authority(conn, ROOT) is not None:
            raise CertdeskError("ca.already_initialised", name=ca.root_name)
        for name, cert, ref, profile in rows:
            _record_authority(conn, name, name, 1, cert, ref, key_type, profile, now)
        audit.append(
            conn,
            at=now,
            actor=ctx.actor,
            action="ca.init",
            object_type="authority",
            object_id=ROOT,
            after={
                "root": root_cert.subject.rfc4514_string(),
                "issuing": issuing_cert.subject.rfc4514_string(),
                "key_type": key_type.value,
                "key_storage": ca.key_storage,
            },
        )
    export_certificates(ctx)
    with ctx.db.read() as conn:
        return require_authority(conn, ROOT), require_authority(conn, ISSUING)


def _sign_issuing(
    ctx: Context,
    root_signer: Signer,
    root_cert: x509.Certificate,
    subject: x509.Name,
    signer: Signer,
    now: dt.datetime,
) -> x509.Certificate:
    """An issuing CA's certificate, signed by the root."""
    return Authority(root_signer, root_cert, publication_urls(ctx, ROOT)).issue(
        CertificateOrder(
            x509.random_serial_number(),
            subject,
            signer.public_key,
            Profile.ISSUING_CA,
            now - CLOCK_SKEW,
            add_years(now, ctx.config.ca.issuing_years),
        )
    )


def _record_authority(
    conn: Connection,
    name: str,
    role: str,
    generation: int,
    cert: x509.Certificate,
    key_ref: str,
    key_type: KeyType,
    profile: Profile,
    now: dt.datetime,
) -> None:
    """The authority's row and its certificate's row (signed by the root: issuer `root`)."""
    der = cert.public_bytes(Encoding.DER)
    authority_store.insert_authority(
        conn,
        {
            "name": name,
            "role": role,
            "generation": generation,
            "state": AuthorityState.ACTIVE.value,
            "key_id": key_id_of(cert),
            "subject": cert.subject.rfc4514_string(),
            "key_type": key_type.value,
            "key_ref": key_ref,
            "certificate_der": der,
            "crl_number": 0,
            "created_at": now,
        },
    )
    cert_store.insert_signed(
        conn,
        {
            "serial": format(cert.serial_number, "x"),
            "issuer": ROOT,
            "profile": profile.value,
            "state": CertState.ACTIVE.value,
            "subject": cert.subject.rfc4514_string(),
            "not_before": cert.not_valid_before_utc,
            "not_after": cert.not_valid_after_utc,
            "fingerprint": hashlib.sha256(der).hexdigest(),
            "der": der,
            "reserved_at": now,
            "issued_at": now,
        },
    )


def add_issuing_generation(ctx: Context) -> AuthorityInfo:
    """A new issuing CA (generation n+1, signed by the root) becomes the one that issues; the
    ones active before become *retiring*: still trusted for what they signed, issuing nothing.

    The building block of a rollover: no holder is re-enrolled, their certificates keep working
    until they are renewed under the new generation.
    """
    ca = ctx.config.ca
    if ca.key_storage != "file":
        raise CertdeskError(
            "config.invalid", detail="a new issuing generation on an HSM needs its own key URI"
        )
    with ctx.db.read() as conn:
        root = require_authority(conn, ROOT)
        generation = 1 + max(i.generation for i in list_authorities(conn) if i.role == ISSUING)
    name = f"{ISSUING}-{generation}"
    key_type = KeyType.parse(ca.key_type)
    now = ctx.clock.now().replace(microsecond=0)
    subject = make_name(
        (("C", ca.country), ("O", ca.organisation), ("CN", f"{ca.issuing_name} G{generation}"))
    )
    signer, key_ref = _new_signer(ctx, name, key_type)
    cert = _sign_issuing(ctx, load_signer(ctx, root), root.certificate, subject, signer, now)
    with ctx.db.write() as conn:
        before = [i for i in active_issuers(conn)]
        _record_authority(
            conn, name, ISSUING, generation, cert, key_ref, key_type, Profile.ISSUING_CA, now
        )
        moves = [
            Move(i.name, AuthorityState.ACTIVE, AuthorityState.RETIRING, kind="authority")
            for i in before
        ]
        transition(conn, now, ctx.actor, "authority.retiring", moves)
        ctx.record(
            conn,
            now,
            "authority.add",
            "authority",
            name,
            after={"subject": cert.subject.rfc4514_string(), "generation": generation},
        )
    export_certificates(ctx)
    with ctx.db.read() as conn:
        return require_authority(conn, name)


def export_certificates(ctx: Context) -> None:
    """Write the CA certificates for download (DER at the caIssuers URL, PEM beside it)."""
    with ctx.db.read() as conn:
        infos = list_authorities(conn)
    out = pki_dir(ctx)
    for info in infos:
        atomic_write(out / f"{info.name}.crt", info.certificate.public_bytes(Encoding.DER))
        atomic_write(out / f"{info.name}.pem", info.certificate.public_bytes(Encoding.PEM))
    issuers = Issuers(infos)
    chain = b"".join(
        i.certificate.public_bytes(Encoding.PEM) for i in (issuers.newest(), issuers.root())
    )
    atomic_write(out / "chain.pem", chain)
