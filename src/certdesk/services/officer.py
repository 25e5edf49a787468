"""Every action of the officer console and the REST API, authorised here and nowhere else.

Pages and API routes are thin: they identify the person (`Access.identify`) and call one method
of `OfficerDesk`. Each method first asks `Access.require` for the permission it needs — which
writes an audit record and raises 403 when it is missing — and then runs the use case acting as
the officer, so the audit records of the change name them. The console and the API therefore
cannot disagree about who may do what.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from certdesk.domain.errors import CertdeskError
from certdesk.domain.registry import Grants, Person, Position, Token, Unit
from certdesk.services import (
    audit_log,
    content,
    enrolment_codes,
    expiry,
    registry,
    reminders,
    revocation,
    rollover,
)
from certdesk.services import campaign as campaigns
from certdesk.services import certificates as certs
from certdesk.services import tokens as custody
from certdesk.services.access import Access, Principal
from certdesk.services.authorities import ISSUING, AuthorityInfo
from certdesk.services.ca_overview import AuthoritySummary, ca_overview
from certdesk.services.context import Context
from certdesk.services.crl_publish import PublishedCRL, publish_crl

UNITS = "ra.units.manage"
PEOPLE = "ra.people.manage"
TOKENS = "ra.tokens.manage"
CERTS = "ra.certs.manage"
CODES = "ra.codes.manage"
CONTENT = "ra.content.manage"
AUDIT_VIEW = "audit.view"
AUDIT_VERIFY = "audit.verify"
CA_VIEW = "ca.view"
CRL_PUBLISH = "ca.crl.publish"
ROLLOVER = "ca.rollover"
UNIT_PEOPLE = "unit.people.view"
UNIT_EXPIRY = "unit.expiry.view"
CAMPAIGN = "ra.campaign.view"
CAMPAIGN_REMIND = "ra.campaign.remind"
POSITIONS = "ra.positions.manage"
REQUESTS_FILE = "unit.requests.file"
REQUESTS_DECIDE = "ra.requests.manage"
# Every permission certdesk itself checks (the business system's own come from the registry).
CHECKED = (
    UNITS, PEOPLE, TOKENS, CERTS, CODES, CONTENT, AUDIT_VIEW, AUDIT_VERIFY, CA_VIEW, CRL_PUBLISH,
    ROLLOVER, UNIT_PEOPLE, UNIT_EXPIRY, CAMPAIGN, CAMPAIGN_REMIND, POSITIONS, REQUESTS_FILE,
    REQUESTS_DECIDE,
)  # fmt: skip
EXPORT_MAX = 10_000  # rows of a CSV export (and of an unpaged listing)


@dataclass(frozen=True)
class PersonFile:
    """One person as the office sees them: record, certificates and tokens kept."""

    person: Person
    certificates: list[certs.CertificateRecord]
    tokens: list[Token]


class OfficerDesk:
    def __init__(self, access: Access) -> None:
        self.access = access
        self.ctx = access.ctx

    def _as(
        self, who: Principal, permission: str, *texts: str | None, unit: str | None = None
    ) -> Context:
        """Allowed (else 403, audited) → the context acting as `who`; then the caller's text
        is checked (no NUL: PostgreSQL refuses it, and no record should hold one)."""
        self.access.require(who, permission, unit)
        if any(text and "\x00" in text for text in texts):
            raise CertdeskError("input.invalid", detail="text must not contain NUL characters")
        return self.ctx.acting_as(who.actor)

    # -- units -----------------------------------------------------------------------------------

    def units(self, who: Principal) -> list[Unit]:
        return registry.list_units(self._as(who, UNITS))

    def add_unit(
        self,
        who: Principal,
        code: str,
        name: str,
        contact_name: str = "",
        contact_email: str = "",
        contact_phone: str = "",
    ) -> Unit:
        ctx = self._as(who, UNITS, code, name, contact_name, contact_email, contact_phone)
        return registry.add_unit(
            ctx, code.strip(), name.strip(), contact_name, contact_email, contact_phone
        )

    # -- people ----------------------------------------------------------------------------------

    def positions(self, who: Principal) -> list[Position]:
        return registry.list_positions(self._as(who, PEOPLE))

    def position_names(self, who: Principal) -> dict[str, str]:
        """Code → display name of every position, for showing names where codes are stored.
        Names only (no grants), which every logged-in person sees of their own on the home page."""
        return {p.code: p.name for p in registry.list_positions(self.ctx)}

    def unit_choices(self, who: Principal) -> list[Unit]:
        """The units a person can be registered in (part of managing people)."""
        return registry.list_units(self._as(who, PEOPLE))

    def people(
        self,
        who: Principal,
        search: str | None = None,
        unit_code: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Person]:
        """Everyone matching, or `limit` of them (at most EXPORT_MAX) from `offset`."""
        ctx = self._as(who, PEOPLE, search, unit_code)
        wanted = EXPORT_MAX if limit is None else max(1, min(limit, EXPORT_MAX))
        return registry.list_people(ctx, unit_code or None, search, wanted, offset)

    def person_file(self, who: Principal, person_id: str) -> PersonFile:
        ctx = self._as(who, PEOPLE, person_id)
        return PersonFile(
            registry.find_person(ctx, person_id),
            certs.list_certificates(ctx, person_id=person_id, limit=50),
            custody.list_tokens(ctx, keeper_id=person_id),
        )

    def register_person(
        self,
        who: Principal,
        person_id: str,
        name: str,
        unit_code: str,
        email: str,
        phone: str = "",
        position_code: str | None = None,
    ) -> Person:
        ctx = self._as(who, PEOPLE, person_id, name, unit_code, email, phone, position_code)
        return registry.add_person(
            ctx,
            person_id.strip(),
            name.strip(),
            unit_code,
            email.strip(),
            phone.strip(),
            position_code or None,
        )

    def update_person(
        self,
        who: Principal,
        person_id: str,
        name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
    ) -> Person:
        ctx = self._as(who, PEOPLE, person_id, name, email, phone)
        return registry.update_person(ctx, person_id, name=name, email=email, phone=phone)

    def set_position(self, who: Principal, person_id: str, position_code: str) -> Person:
        ctx = self._as(who, PEOPLE, person_id, position_code)
        return registry.set_position(ctx, person_id, position_code)

    def departure_preview(self, who: Principal, person_id: str) -> registry.Departure:
        return registry.preview_departure(self._as(who, PEOPLE, person_id), person_id)

    def depart(self, who: Principal, person_id: str) -> registry.Departure:
        return registry.mark_departed(self._as(who, PEOPLE, person_id), person_id)

    # -- positions, roles and permissions: at the next request of everyone affected ------------

    def positions_overview(self, who: Principal) -> registry.PositionsOverview:
        return registry.positions_overview(self._as(who, POSITIONS), CHECKED)

    def define_position(self, who: Principal, code: str, name: str, roles: list[str]) -> Grants:
        ctx = self._as(who, POSITIONS, code, name, *roles)
        return registry.define_position(ctx, code, name, roles)

    def define_role(self, who: Principal, code: str, name: str, permissions: list[str]) -> Grants:
        ctx = self._as(who, POSITIONS, code, name, *permissions)
        return registry.define_role(ctx, code, name, permissions)

    def position_deletion(self, who: Principal, code: str) -> Grants:
        return registry.preview_delete_position(self._as(who, POSITIONS, code), code)

    def delete_position(self, who: Principal, code: str) -> None:
        registry.delete_position(self._as(who, POSITIONS, code), code)

    # -- tokens ----------------------------------------------------------------------------------

    def tokens(self, who: Principal) -> list[Token]:
        return custody.list_tokens(self._as(who, TOKENS))

    def register_token(self, who: Principal, serial: str, model: str = "") -> Token:
        ctx = self._as(who, TOKENS, serial, model)
        return custody.register_token(ctx, serial.strip(), model.strip())

    def assign_token(self, who: Principal, serial: str, person_id: str) -> Token:
        ctx = self._as(who, TOKENS, serial, person_id)
        return custody.assign_token(ctx, serial, person_id.strip())

    def return_token(self, who: Principal, serial: str) -> Token:
        return custody.return_token(self._as(who, TOKENS, serial), serial)

    def lost_preview(self, who: Principal, serial: str) -> custody.LostToken:
        return custody.preview_lost(self._as(who, TOKENS, serial), serial)

    def report_lost(self, who: Principal, serial: str) -> custody.LostToken:
        return custody.report_lost(self._as(who, TOKENS, serial), serial)

    # -- certificates ----------------------------------------------------------------------------

    def certificates(
        self,
        who: Principal,
        search: str | None = None,
        state: str | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[certs.CertificateRecord]:
        ctx = self._as(who, CERTS, search, state)
        return certs.list_certificates(
            ctx, state=state or None, limit=max(1, min(limit, 1000)), search=search, offset=offset
        )

    def export_certificates(
        self, who: Principal, search: str | None = None, state: str | None = None
    ) -> list[certs.CertificateRecord]:
        """Every certificate matching (at most EXPORT_MAX), for the CSV export."""
        ctx = self._as(who, CERTS, search, state)
        return certs.list_certificates(ctx, state=state or None, limit=EXPORT_MAX, search=search)

    def certificate(self, who: Principal, serial: str) -> certs.CertificateRecord:
        return certs.get_certificate(self._as(who, CERTS), serial)

    def revocation_preview(
        self, who: Principal, serial: str, reason: str
    ) -> revocation.RevocationPreview:
        ctx = self._as(who, CERTS, serial, reason)
        return revocation.preview(ctx, serial, reason)

    def revoke(self, who: Principal, serial: str, reason: str) -> revocation.Revoked:
        return revocation.revoke(self._as(who, CERTS, serial, reason), serial, reason)

    # -- enrolment codes -------------------------------------------------------------------------

    def codes_overview(
        self, who: Principal
    ) -> tuple[list[enrolment_codes.CodeRecord], int, dt.datetime]:
        """For the codes page: the newest codes (never the codes themselves), the default
        validity in hours and the time they are judged at (refused unless `who` may create
        codes)."""
        ctx = self._as(who, CODES)
        return (
            enrolment_codes.list_codes(ctx),
            enrolment_codes.default_hours(ctx),
            ctx.clock.now(),
        )

    def create_code(
        self, who: Principal, person_id: str, hours: int | None = None
    ) -> tuple[str, dt.datetime]:
        ctx = self._as(who, CODES, person_id)
        return enrolment_codes.create_code(ctx, person_id.strip(), hours)

    # -- announcements and forms (reading them is for everyone logged in) ------------------------

    def announcements(self, who: Principal, limit: int = 50) -> list[content.Announcement]:
        return content.list_announcements(self.ctx, limit=max(1, min(limit, 200)))

    def content_overview(
        self, who: Principal
    ) -> tuple[list[content.Announcement], list[content.Form]]:
        """What the office has published, for the page that manages it."""
        ctx = self._as(who, CONTENT)
        return content.list_announcements(ctx, limit=50), content.list_forms(ctx)

    def publish_announcement(self, who: Principal, title: str, body: str) -> content.Announcement:
        ctx = self._as(who, CONTENT, title, body)
        return content.get_announcement(ctx, content.publish_announcement(ctx, title, body))

    def forms(self, who: Principal) -> list[content.Form]:
        return content.list_forms(self.ctx)

    def upload_form(self, who: Principal, name: str, title: str, data: bytes) -> content.Form:
        return content.upload_form(self._as(who, CONTENT, name, title), name, title, data)

    # -- CA --------------------------------------------------------------------------------------

    def ca_info(self, who: Principal) -> list[AuthoritySummary]:
        return ca_overview(self._as(who, CA_VIEW))

    def publish_crl(self, who: Principal, issuer: str = ISSUING) -> PublishedCRL:
        return publish_crl(self._as(who, CRL_PUBLISH, issuer), issuer)

    def rollover_plan(self, who: Principal) -> rollover.RolloverPlan:
        """What a rollover would do (the console's confirmation step); nothing is written.
        The key is made where the configuration says (file, or generated on the HSM)."""
        return rollover.plan_rollover(self._as(who, ROLLOVER))

    def roll_over(self, who: Principal) -> tuple[rollover.RolloverPlan, AuthorityInfo]:
        """The plan as it stood, then the new generation (audited as the administrator)."""
        ctx = self._as(who, ROLLOVER)
        plan = rollover.plan_rollover(ctx)
        return plan, rollover.roll_over(ctx)

    # -- audit -----------------------------------------------------------------------------------

    def audit_records(
        self,
        who: Principal,
        before: int | None = None,
        limit: int = 50,
        action: str | None = None,
        actor: str | None = None,
    ) -> audit_log.AuditPage:
        ctx = self._as(who, AUDIT_VIEW, action, actor)
        return audit_log.list_records(ctx, before, limit, action or None, actor or None)

    def audit_actions(self, who: Principal) -> list[str]:
        """The action names in the log, for the audit page's filter."""
        return audit_log.known_actions(self._as(who, AUDIT_VIEW))

    def verify_audit(self, who: Principal) -> audit_log.AuditReport:
        return audit_log.verify_chain(self._as(who, AUDIT_VERIFY))

    # -- the unit officer: their own unit only ---------------------------------------------------

    def unit_people(self, who: Principal, unit_code: str | None = None) -> list[Person]:
        unit = unit_code or who.person.unit_code
        return registry.list_people(self._as(who, UNIT_PEOPLE, unit=unit), unit)

    def unit_dashboard(
        self, who: Principal, unit_code: str | None = None
    ) -> expiry.ExpiryDashboard:
        unit = unit_code or who.person.unit_code
        return expiry.expiry_dashboard(self._as(who, UNIT_EXPIRY, unit=unit), unit)

    # -- the renewal campaign: every unit for the office, their own for the unit officer -------

    def campaign(
        self, who: Principal, start: dt.date | None, end: dt.date | None, unit: str | None = None
    ) -> campaigns.Campaign:
        return campaigns.campaign(self._as(who, CAMPAIGN), start, end, unit or None)

    def unit_campaign(
        self, who: Principal, start: dt.date | None, end: dt.date | None, unit: str | None = None
    ) -> campaigns.Campaign:
        code = unit or who.person.unit_code
        return campaigns.campaign(self._as(who, UNIT_EXPIRY, unit=code), start, end, code)

    def deliveries(self, who: Principal, state: str | None = None) -> list[reminders.Delivery]:
        """The reminders' delivery log (what failed, and why)."""
        return reminders.delivery_log(self._as(who, CAMPAIGN), state or None)

    def remind_unit(self, who: Principal, unit: str) -> int:
        """ "Remind now": the unit's people in the window, through the outbox (audited)."""
        return reminders.remind_now(self._as(who, CAMPAIGN_REMIND, unit), unit)
