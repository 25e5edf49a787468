"""Publishing CRLs: reserve the next CRL number (committed, audited), build, write atomically;
and the job that republishes each issuer's CRL when `domain/crl_schedule.py` says it is due.

The number is reserved before the CRL is built so it only ever increases, even if building is
interrupted; building reads from one snapshot and does not hold the write lock, so issuance goes
on while a large CRL is being made. The recorded and audited number of entries is counted in the
reserving transaction with the predicate the builder lists by (`store/crl_entries.py`
`on_crl`); a revocation committed between the two is on the CRL but not in that count.

Complete and delta CRLs take their numbers from the same counter (RFC 5280 §5.2.3). A delta CRL
lists what went on the CRL since its base was published, and a little before (`LATE_COMMIT`):
a revocation stamped just before the base's thisUpdate but committed after the base's snapshot
is on neither otherwise. Listing an entry the base also lists is harmless. Without delta CRLs
such a revocation waits for the next complete CRL.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection

from certdesk.ca.crl import build_crl
from certdesk.ca.signer import Signer
from certdesk.domain.crl_numbers import next_crl_number
from certdesk.domain.crl_schedule import (
    CRLDue,
    CRLKind,
    CRLSchedule,
    PublishedRecord,
    crl_due,
    newest,
    next_due_at,
)
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import AuthorityState
from certdesk.services.authorities import (
    ISSUING,
    delta_crl_url,
    get_authority,
    list_authorities,
    load_signer,
    pki_dir,
    require_authority,
)
from certdesk.services.context import Context
from certdesk.services.files import atomic_write
from certdesk.store import authorities as authority_store
from certdesk.store import crls as crl_store
from certdesk.store.crl_entries import any_on_crl_after, count_on_crl, iter_revoked

LATE_COMMIT = dt.timedelta(minutes=5)
log = logging.getLogger("certdesk.crl")


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
    base: int | None = None  # a delta CRL's base CRL number

    @property
    def kind(self) -> CRLKind:
        return CRLKind.COMPLETE if self.base is None else CRLKind.DELTA


@dataclass(frozen=True)
class CRLStatus:
    """An issuer's last complete and delta CRL, what is due now and, if nothing, from when."""

    issuer: str
    complete: PublishedRecord | None
    delta: PublishedRecord | None
    due: CRLDue
    next_due_at: dt.datetime | None


def publish_crl(
    ctx: Context,
    issuer: str = ISSUING,
    kind: CRLKind = CRLKind.COMPLETE,
    until: dt.datetime | None = None,
) -> PublishedCRL:
    """Publish `issuer`'s complete CRL now, or a delta CRL against its last complete one.
    `until`: a later nextUpdate than the configured interval (a retired CA's last CRL)."""
    with ctx.db.read() as conn:
        known = get_authority(conn, issuer)
    if known is None:  # the console, the API and the CLI all name the CA by its id
        raise CertdeskError("input.invalid", detail=f"no CA named {issuer!r}")
    # Load the key first: a wrong passphrase must not burn a CRL number.
    return _publish(ctx, issuer, load_signer(ctx, known), kind, until)


def _publish(
    ctx: Context, issuer: str, signer: Signer, kind: CRLKind, until: dt.datetime | None = None
) -> PublishedCRL:
    at = ctx.clock.now()  # recorded as is: a revocation later in the same second is told apart
    now = at.replace(microsecond=0)  # the CRL's thisUpdate
    crl = ctx.config.crl
    delta = kind is CRLKind.DELTA
    hours = crl.delta_next_update_hours if delta else crl.next_update_hours
    next_update = max(now + dt.timedelta(hours=hours), until or now)
    with ctx.db.write() as conn:
        info = require_authority(conn, issuer)
        base = crl_store.latest(conn, issuer) if delta else None
        if delta and base is None:
            raise CertdeskError("crl.no_base", issuer=issuer)
        since = base.this_update - LATE_COMMIT if base is not None else None
        base_number = base.number if base is not None else None
        number = next_crl_number(info.crl_number, now)  # complete and delta share the sequence
        entries = count_on_crl(conn, issuer, now, since)
        authority_store.set_crl_number(conn, issuer, number)
        crl_store.record(conn, issuer, number, at, next_update, entries, base_number)
        after = {"number": number, "entries": entries, "next_update": next_update.isoformat()}
        if delta:
            after["base"] = base_number
        ctx.record(conn, now, "crl.publish", "crl", f"{issuer}/{number}", after=after)
    freshest = delta_crl_url(ctx, issuer) if crl.delta and not delta else None
    with ctx.db.read() as conn:
        built = build_crl(
            signer,
            info.certificate,
            number,
            now,
            next_update,
            iter_revoked(conn, issuer, now, since),
            base=base_number,
            delta_url=freshest,
        )
    der = built.public_bytes(Encoding.DER)
    with ctx.db.write() as conn:  # every machine serves it from there (services/pki_files.py)
        crl_store.keep_der(conn, issuer, number, der)
    out = pki_dir(ctx)
    stem = f"{issuer}-delta" if delta else issuer
    der_path, pem_path = out / f"{stem}.crl", out / f"{stem}.crl.pem"
    atomic_write(der_path, der)
    atomic_write(pem_path, built.public_bytes(Encoding.PEM))
    return PublishedCRL(
        issuer, number, now, next_update, entries, der_path, pem_path, built, base_number
    )


def _status(conn: Connection, schedule: CRLSchedule, issuer: str, now: dt.datetime) -> CRLStatus:
    complete = crl_store.latest(conn, issuer)
    delta = crl_store.latest(conn, issuer, delta=True)
    last = newest(complete, delta)
    changed = last is not None and any_on_crl_after(conn, issuer, now, last.this_update)
    due = crl_due(schedule, now, complete, delta, changed)
    return CRLStatus(issuer, complete, delta, due, next_due_at(schedule, complete, delta))


def crl_status(ctx: Context) -> list[CRLStatus]:
    """Every CA that still publishes a CRL (all but retired ones), and whether one is due."""
    schedule = ctx.config.crl.schedule()
    now = ctx.clock.now().replace(microsecond=0)
    with ctx.db.read() as conn:
        names = [a.name for a in list_authorities(conn) if a.state is not AuthorityState.RETIRED]
        return [_status(conn, schedule, name, now) for name in names]


def republish_due(ctx: Context) -> list[PublishedCRL]:
    """The publishing job: for each CA, publish the CRLs that are due at `ctx.clock.now()`
    (before nextUpdate, after a revocation, a delta after each complete CRL). Run it every
    few seconds: a round with nothing due costs three small indexed queries per CA. A CA whose
    key cannot be used now (wrong passphrase, HSM away) is logged and left due for the next
    round; the others are published and a server still starts."""
    out = []
    for status in crl_status(ctx):
        if not status.due.kinds:
            continue
        try:
            with ctx.db.read() as conn:
                signer = load_signer(ctx, require_authority(conn, status.issuer))
            out += [_publish(ctx, status.issuer, signer, kind) for kind in status.due.kinds]
        except CertdeskError as exc:
            log.error("CRL of %s not published: %s (%s)", status.issuer, exc.code, exc)
    return out
