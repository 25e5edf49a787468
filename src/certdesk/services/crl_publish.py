"""Publishing a CRL: reserve the next CRL number (committed, audited), build, write atomically.

The number is reserved before the CRL is built so it only ever increases, even if building is
interrupted; building reads from one snapshot and does not hold the write lock, so issuance goes
on while a large CRL is being made. The recorded and audited number of entries is counted in the
reserving transaction with the predicate the builder lists by (`store/crl_entries.py`
`on_crl`); a revocation committed between the two is on the CRL but not in that count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.ca.crl import build_crl
from certdesk.domain.crl_numbers import next_crl_number
from certdesk.domain.errors import CertdeskError
from certdesk.services.authorities import (
    ISSUING,
    get_authority,
    load_signer,
    pki_dir,
    require_authority,
)
from certdesk.services.context import Context
from certdesk.services.files import atomic_write
from certdesk.store import authorities as authority_store
from certdesk.store import crls as crl_store
from certdesk.store.crl_entries import count_on_crl, iter_revoked


@dataclass(frozen=True)
class PublishedCRL:
    issuer: str
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    entries: int
    der_path: Path
    pem_path: Path
    crl: x509.CertificateRevocationList


def publish_crl(ctx: Context, issuer: str = ISSUING) -> PublishedCRL:
    now = ctx.clock.now().replace(microsecond=0)
    next_update = now + dt.timedelta(hours=ctx.config.crl.next_update_hours)
    with ctx.db.read() as conn:
        known = get_authority(conn, issuer)
        if known is None:  # the console, the API and the CLI all name the CA by its id
            raise CertdeskError("input.invalid", detail=f"no CA named {issuer!r}")
        # Load the key first: a wrong passphrase must not burn a CRL number.
        signer = load_signer(ctx, known)
    with ctx.db.write() as conn:
        info = require_authority(conn, issuer)
        number = next_crl_number(info.crl_number, now)
        entries = count_on_crl(conn, issuer, now)
        authority_store.set_crl_number(conn, issuer, number)
        crl_store.record(conn, issuer, number, now, next_update, entries)
        ctx.record(
            conn,
            now,
            "crl.publish",
            "crl",
            f"{issuer}/{number}",
            after={"number": number, "entries": entries, "next_update": next_update.isoformat()},
        )
    with ctx.db.read() as conn:
        crl = build_crl(
            signer, info.certificate, number, now, next_update, iter_revoked(conn, issuer, now)
        )
    out = pki_dir(ctx)
    der_path, pem_path = out / f"{issuer}.crl", out / f"{issuer}.crl.pem"
    atomic_write(der_path, crl.public_bytes(Encoding.DER))
    atomic_write(pem_path, crl.public_bytes(Encoding.PEM))
    return PublishedCRL(issuer, number, now, next_update, entries, der_path, pem_path, crl)
