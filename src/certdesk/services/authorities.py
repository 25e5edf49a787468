"""Creating the CA hierarchy and loading a CA's signer (file key or PKCS#11 key).

The root is self-signed; the issuing CA is signed by the root; both certificates, their key
references and CRL counters live in the `authorities` table, and copies for download are written
under `<data_dir>/pki/`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection, insert, select

from certdesk.ca.issuer import Authority, CertificateOrder, LintHook
from certdesk.ca.keys import KeyType, generate_key, read_encrypted_key, write_encrypted_key
from certdesk.ca.profiles import Profile, PublicationUrls, make_name
from certdesk.ca.signer import FileSigner, Signer
from certdesk.domain.errors import CertdeskError
from certdesk.domain.validity import CLOCK_SKEW, add_years
from certdesk.services.context import Context
from certdesk.services.files import atomic_write
from certdesk.store import audit
from certdesk.store.tables import authorities, certificates

ROOT, ISSUING = "root", "issuing"


@dataclass(frozen=True)
class AuthorityInfo:
    name: str
    subject: str
    key_type: str
    key_ref: str
    certificate: x509.Certificate
    crl_number: int


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
    row = conn.execute(select(authorities).where(authorities.c.name == name)).first()
    if row is None:
        return None
    return AuthorityInfo(
        row.name,
        row.subject,
        row.key_type,
        row.key_ref,
        x509.load_der_x509_certificate(row.certificate_der),
        row.crl_number,
    )


def require_authority(conn: Connection, name: str) -> AuthorityInfo:
    info = get_authority(conn, name)
    if info is None:
        raise CertdeskError("ca.not_initialised")
    return info


def publication_urls(ctx: Context, issuer: str) -> PublicationUrls:
    """Where certificates issued by `issuer` point: its CRL, OCSP and certificate."""
    if issuer == ISSUING:
        return PublicationUrls(
            ctx.config.url("crl"), ctx.config.url("ocsp"), ctx.config.url("ca_issuers")
        )
    base = ctx.config.urls.base.rstrip("/")
    return PublicationUrls(f"{base}/pki/root.crl", ctx.config.url("ocsp"), f"{base}/pki/root.crt")


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
    issuing_cert = Authority(root_signer, root_cert, publication_urls(ctx, ROOT)).issue(
        CertificateOrder(
            x509.random_serial_number(),
            issuing_name,
            issuing_signer.public_key,
            Profile.ISSUING_CA,
            now - CLOCK_SKEW,
            add_years(now, ca.issuing_years),
        )
    )
    rows = [
        (ROOT, root_cert, root_ref, Profile.ROOT_CA),
        (ISSUING, issuing_cert, issuing_ref, Profile.ISSUING_CA),
    ]
    with ctx.db.write() as conn:
        if get_authority(conn, ROOT) is not None:
            raise CertdeskError("ca.already_initialised", name=ca.root_name)
        for name, cert, ref, profile in rows:
            der = cert.public_bytes(Encoding.DER)
            conn.execute(
                insert(authorities).values(
                    name=name,
                    subject=cert.subject.rfc4514_string(),
                    key_type=key_type.value,
                    key_ref=ref,
                    certificate_der=der,
                    crl_number=0,
                    created_at=now,
                )
            )
            conn.execute(
                insert(certificates).values(
                    serial=format(cert.serial_number, "x"),
                    issuer=ROOT,
                    profile=profile.value,
                    state="active",
                    subject=cert.subject.rfc4514_string(),
                    not_before=cert.not_valid_before_utc,
                    not_after=cert.not_valid_after_utc,
                    fingerprint=hashlib.sha256(der).hexdigest(),
                    der=der,
                    reserved_at=now,
                    issued_at=now,
                )
            )
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


def export_certificates(ctx: Context) -> None:
    """Write the CA certificates for download (DER at the caIssuers URL, PEM beside it)."""
    with ctx.db.read() as conn:
        infos = [require_authority(conn, n) for n in (ROOT, ISSUING)]
    out = pki_dir(ctx)
    for info in infos:
        atomic_write(out / f"{info.name}.crt", info.certificate.public_bytes(Encoding.DER))
        atomic_write(out / f"{info.name}.pem", info.certificate.public_bytes(Encoding.PEM))
    chain = b"".join(i.certificate.public_bytes(Encoding.PEM) for i in reversed(infos))
    atomic_write(out / "chain.pem", chain)
