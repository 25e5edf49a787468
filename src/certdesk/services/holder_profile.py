"""What the holder's tool shows read-only before renewing (rule 6 of the notice): the
registry's data, the office to call if it is wrong, the window, a renewal in flight, the PIN."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.renewal import RenewalDecision
from certdesk.domain.states import CertState
from certdesk.services.context import Context
from certdesk.services.enrolment.renewal import refuse_unless_allowed
from certdesk.services.holder_auth import Current
from certdesk.services.policy import renewal_policy
from certdesk.services.registry import get_person, get_unit
from certdesk.store import audit
from certdesk.store import certificates as cert_store
from certdesk.store import registry as registry_store
from certdesk.store import tokens as token_store


@dataclass(frozen=True)
class HolderProfile:
    person_id: str
    name: str
    unit: str
    position: str
    email: str
    phone: str
    unit_contact: str
    support: str
    serial: str
    state: CertState
    not_before: dt.datetime
    not_after: dt.datetime
    decision: RenewalDecision
    refusal: CertdeskError | None
    pending: str | None
    pin_changed: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "unit": self.unit,
            "position": self.position,
            "email": self.email,
            "phone": self.phone,
            "unit_contact": self.unit_contact,
            "support": self.support,
            "certificate": {
                "serial": self.serial,
                "state": self.state.value,
                "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(),
            },
            "renewal": {
                "allowed": self.decision.allowed,
                "opens_at": self.decision.opens_at.isoformat(),
                "closes_at": self.decision.closes_at.isoformat(),
                "refusal": None if self.refusal is None else self.refusal.code,
                "messages": None if self.refusal is None else self.refusal.messages(),
                "pending": self.pending,
            },
            "token": {"pin_changed": self.pin_changed},
        }


def holder_profile(ctx: Context, conn: Connection, current: Current) -> HolderProfile:
    """Read inside the caller's transaction (which spends the request's nonce)."""
    now = ctx.clock.now()
    row = cert_store.get(conn, current.serial)
    assert row is not None, "authenticated certificates exist"
    person = get_person(conn, current.person_id)
    unit = get_unit(conn, person.unit_code)
    position = (
        None
        if person.position_code is None
        else registry_store.get_position(conn, person.position_code)
    )
    token = None if current.token_serial is None else token_store.get(conn, current.token_serial)
    in_flight = cert_store.in_flight_renewal(conn, current.serial)
    refusal: CertdeskError | None = None
    try:
        decision = refuse_unless_allowed(ctx, conn, row, now)
    except CertdeskError as exc:
        refusal = exc
        decision = renewal_policy(ctx.config).decide(CertState(row.state), row.not_after, now)
    return HolderProfile(
        person.person_id,
        person.name,
        person.unit_name,
        "" if position is None else position.name,
        person.email,
        person.phone,
        ", ".join(x for x in (unit.contact_name, unit.contact_phone, unit.contact_email) if x),
        ctx.config.support.contacts(),
        current.serial,
        current.state,
        current.certificate.not_valid_before_utc,
        current.certificate.not_valid_after_utc,
        decision,
        refusal,
        None if in_flight is None else in_flight.serial,
        None if token is None else token.pin_changed,
    )


def record_pin_changed(ctx: Context, conn: Connection, current: Current) -> str:
    """The holder changed the token's initial PIN (inside the caller's transaction)."""
    if current.token_serial is None:
        raise CertdeskError("token.no_token_recorded", serial=current.serial)
    now = ctx.clock.now()
    token_store.mark_pin_changed(conn, current.token_serial, now)
    audit.append(
        conn,
        at=now,
        actor=f"holder:{current.person_id}",
        action="token.pin_changed",
        object_type="token",
        object_id=current.token_serial,
        after={"pin_changed": True},
    )
    return current.token_serial
