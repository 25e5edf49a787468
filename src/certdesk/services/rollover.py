"""Rolling the issuing CA over, and retiring the generation it replaces.

`plan_rollover` says what a rollover will do before anyone confirms it (the generations that
will retire, how many of their certificates are still valid and until when, where the new key
will be); `roll_over` makes the new generation (`ca_hierarchy.add_issuing_generation`). A
retiring CA issues nothing and keeps answering (CRL, OCSP) for what it signed;
`retire_finished`, run by maintenance, retires it once none of its certificates is still valid
— every one expired, revoked or superseded — after publishing its last CRL, whose nextUpdate
lies beyond the last expiry of anything it signed (RFC 5280 §5.1.2.5: relying parties may keep
using it to the end; no later CRL will come).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import AuthorityState
from certdesk.services.authorities import (
    ISSUING,
    ROOT,
    AuthorityInfo,
    list_authorities,
    require_authority,
)
from certdesk.services.ca_hierarchy import (
    add_issuing_generation,
    export_certificates,
    generation_key,
    generation_subject,
    next_generation,
)
from certdesk.services.context import Context
from certdesk.services.crl_publish import publish_crl
from certdesk.services.lifecycle import Move, transition
from certdesk.store import authorities as authority_store
from certdesk.store import certificates as cert_store

log = logging.getLogger("certdesk.rollover")


@dataclass(frozen=True)
class GenerationLoad:
    """What an issuing generation still answers for: its certificates valid at `now`."""

    name: str
    generation: int
    state: AuthorityState
    valid_certificates: int
    last_valid_until: dt.datetime | None


def generation_load(conn: Connection, info: AuthorityInfo, now: dt.datetime) -> GenerationLoad:
    count, until = cert_store.still_valid(conn, info.name, now)
    return GenerationLoad(info.name, info.generation, info.state, count, until)


@dataclass(frozen=True)
class RolloverPlan:
    """What `roll_over` will do, shown for confirmation."""

    name: str
    generation: int
    subject: str
    key: str  # storage and location (an HSM URI without its PIN)
    retiring: list[GenerationLoad]  # the generations that stop issuing


def plan_rollover(ctx: Context, key_uri: str | None = None) -> RolloverPlan:
    """Every refusal a rollover would meet before it makes a key (no CA, a bad key URI, an
    HSM without a URI configured), and what it would change; nothing is written."""
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        require_authority(conn, ROOT)
        name, generation = next_generation(conn)
        retiring = [
            generation_load(conn, i, now)
            for i in list_authorities(conn)
            if i.role == ISSUING and i.state is AuthorityState.ACTIVE
        ]
    key = generation_key(ctx, generation, key_uri)
    subject = generation_subject(ctx, generation).rfc4514_string()
    return RolloverPlan(name, generation, subject, key.shown, retiring)


def roll_over(ctx: Context, key_uri: str | None = None) -> AuthorityInfo:
    """The new generation issues from now on; the active ones become retiring (audited)."""
    return add_issuing_generation(ctx, key_uri)


def retire_finished(ctx: Context) -> list[str]:
    """Retire every retiring issuing CA none of whose certificates is still valid; returns
    their ids. Each gets its last CRL first (so a failure leaves it retiring, tried again at
    the next round), then moves to retired (audited, `authority.retire`); the downloads stop
    listing it in `chain.pem`, its certificate and CRL stay published."""
    now = ctx.clock.now().replace(microsecond=0)
    with ctx.db.read() as conn:
        done = [
            name
            for name in authority_store.issuers_in(conn, AuthorityState.RETIRING)
            if cert_store.still_valid(conn, name, now)[0] == 0
        ]
    retired = []
    for name in done:
        with ctx.db.read() as conn:
            last = cert_store.last_expiry(conn, name)
        try:
            final = publish_crl(ctx, name, until=last)
        except CertdeskError as exc:  # e.g. the HSM is unreachable: the next round tries again
            log.warning("issuing CA %s not retired yet: %s", name, exc.message("en"))
            continue
        with ctx.db.write() as conn:
            if cert_store.still_valid(conn, name, now)[0]:
                continue  # a reservation made before the rollover was signed meanwhile
            move = Move(
                name,
                AuthorityState.RETIRING,
                AuthorityState.RETIRED,
                note={"last_crl": final.number, "next_update": final.next_update.isoformat()},
                kind="authority",
            )
            transition(conn, now, ctx.actor, "authority.retire", [move])
        log.info("issuing CA %s retired; its last CRL is #%d", name, final.number)
        retired.append(name)
    if retired:
        export_certificates(ctx)
    return retired
