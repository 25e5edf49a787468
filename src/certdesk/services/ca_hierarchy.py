"""Making CAs: the root and first issuing CA at `certdesk ca init`, and a new issuing
generation for a rollover. Keys are created where the configuration says (files under
`<data_dir>/ca/`, or an HSM), certificates signed through the one issuing path, and copies for
download written under `<data_dir>/pki/`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection

from certdesk.ca.issuer import Authority, CertificateOrder
from certdesk.ca.keys import KeyType, generate_key, key_type_of, write_encrypted_key
from certdesk.ca.profiles import Profile, make_name
from certdesk.ca.signer import FileSigner, Signer
from certdesk.domain.errors import CertdeskError
from certdesk.domain.pkcs11uri import Pkcs11Uri
from certdesk.domain.states import AuthorityState, CertState
from certdesk.domain.validity import CLOCK_SKEW, add_years
from certdesk.services.authorities import (
    ISSUING,
    ROOT,
    AuthorityInfo,
    active_issuers,
    get_authority,
    key_id_of,
    list_authorities,
    load_signer,
    passphrase,
    pki_dir,
    publication_urls,
    require_authority,
)
from certdesk.services.context import Context
from certdesk.services.files import atomic_write
from certdesk.services.lifecycle import Move, transition
from certdesk.services.pki_files import certificate_files
from certdesk.store import authorities as authority_store
from certdesk.store import certificates as cert_store


def _init_key_uri(ctx: Context, name: str) -> str | None:
    """Where `ca init` makes the root's or the first issuing CA's key (None: a file)."""
    ca = ctx.config.ca
    if ca.key_storage == "file":
        return None
    if ca.key_storage != "pkcs11":
        raise CertdeskError("config.invalid", detail=f"ca.key_storage {ca.key_storage!r}")
    uri = ca.root_key_uri if name == ROOT else ca.issuing_key_uri
    if not uri:
        raise CertdeskError("config.invalid", detail=f"ca.{name}_key_uri is empty")
    return uri


def _new_signer(ctx: Context, name: str, key_type: KeyType, uri: str | None) -> tuple[Signer, str]:
    """Create a CA key on the HSM at `uri`, or in an encrypted file if None; returns the signer
    and its reference."""
    if uri is not None:
        from certdesk.ca.pkcs11_signer import generate_hsm_key

        return generate_hsm_key(ctx.config.ca.pkcs11_module, uri, key_type), uri
    key = generate_key(key_type)
    path = ctx.config.data_dir / "ca" / f"{name}.key"
    if path.exists():
        # Left by an init or rollover that crashed before its transaction committed: that key
        # never signed anything on record. It is kept (renamed), never overwritten.
        stamp = ctx.clock.now().strftime("%Y%m%dT%H%M%S")
        path.rename(path.with_name(f"{name}.key.unused-{stamp}"))
    write_encrypted_key(key, path, passphrase(ctx))
    return FileSigner(key), str(path)


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
    root_signer, root_ref = _new_signer(ctx, ROOT, key_type, _init_key_uri(ctx, ROOT))
    issuing_signer, issuing_ref = _new_signer(ctx, ISSUING, key_type, _init_key_uri(ctx, ISSUING))
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
        ctx.record(
            conn,
            now,
            "ca.init",
            "authority",
            ROOT,
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


def next_generation(conn: Connection) -> tuple[str, int]:
    """The id and number of the issuing generation a rollover would make."""
    generation = 1 + max(i.generation for i in list_authorities(conn) if i.role == ISSUING)
    return f"{ISSUING}-{generation}", generation


def generation_subject(ctx: Context, generation: int) -> x509.Name:
    ca = ctx.config.ca
    return make_name(
        (("C", ca.country), ("O", ca.organisation), ("CN", f"{ca.issuing_name} G{generation}"))
    )


@dataclass(frozen=True)
class GenerationKey:
    """Where a new generation's key will be: an encrypted file (`uri` None), a key generated
    on the HSM, or one already there (`existing`)."""

    uri: str | None
    existing: bool = False

    @property
    def shown(self) -> str:
        """For the confirmation and the audit record: the storage, and the URI without PIN."""
        if self.uri is None:
            return "file"
        where = Pkcs11Uri.parse(self.uri).without_pin()
        return f"pkcs11, {'existing key' if self.existing else 'new key'}: {where}"


def generation_key(ctx: Context, generation: int, key_uri: str | None = None) -> GenerationKey:
    """The URI given (a key already on the HSM); else with `key_storage = pkcs11` a new key
    beside the first one's (`object=<label>-<n>`); else a file. A malformed URI or missing
    configuration is refused here, before anything is created."""
    if key_uri:
        Pkcs11Uri.parse(key_uri)
        return GenerationKey(key_uri, existing=True)
    first = _init_key_uri(ctx, ISSUING)
    if first is None:
        return GenerationKey(None)
    parsed = Pkcs11Uri.parse(first)
    return GenerationKey(
        str(dataclasses.replace(parsed, object=f"{parsed.object or ISSUING}-{generation}"))
    )


def add_issuing_generation(ctx: Context, key_uri: str | None = None) -> AuthorityInfo:
    """A new issuing CA (generation n+1, signed by the root) becomes the one that issues; the
    ones active before become *retiring*: still trusted for what they signed, issuing nothing.

    Its key is an encrypted file, or on the HSM (`key_uri`: a key already there; without it
    and with `key_storage = pkcs11` one is generated there, as `ca init` does). No holder is
    re-enrolled: their certificates keep working until they are renewed under the new one.
    """
    ca = ctx.config.ca
    with ctx.db.read() as conn:
        root = require_authority(conn, ROOT)
        name, generation = next_generation(conn)
    key = generation_key(ctx, generation, key_uri)
    now = ctx.clock.now().replace(microsecond=0)
    subject = generation_subject(ctx, generation)
    if key.existing:
        from certdesk.ca.pkcs11_signer import open_hsm_key

        assert key.uri is not None
        signer: Signer = open_hsm_key(ca.pkcs11_module, key.uri)
        key_ref = key.uri
    else:
        signer, key_ref = _new_signer(ctx, name, KeyType.parse(ca.key_type), key.uri)
    key_type = key_type_of(signer.public_key)
    key_id = x509.SubjectKeyIdentifier.from_public_key(signer.public_key).digest.hex()
    with ctx.db.read() as conn:
        for other in list_authorities(conn):
            if other.key_id == key_id:
                raise CertdeskError("ca.key_in_use", key=key.shown, name=other.name)
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
            after={
                "subject": cert.subject.rfc4514_string(),
                "generation": generation,
                "key_type": key_type.value,
                "key": key.shown,
                "retiring": [i.name for i in before],
            },
        )
    export_certificates(ctx)
    with ctx.db.read() as conn:
        return require_authority(conn, name)


def export_certificates(ctx: Context) -> None:
    """Write this machine's copies of the CA certificates and chains under `<data_dir>/pki/`
    (`chain.pem` is the client-CA file of `certdesk serve` and nginx); /pki/ serves them from
    the database (`services/pki_files.py`)."""
    with ctx.db.read() as conn:
        infos = list_authorities(conn)
    for name, data in certificate_files(infos).items():
        atomic_write(pki_dir(ctx) / name, data)
