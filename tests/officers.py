"""The demo office for console and API tests: one certificate per role, clients that present it.

`open_office(ctx)` runs the demo bootstrap (CA, unit DEMO, roles, positions, staff with
certificates), issues a certificate for the holder demo-0001 (the bootstrap gives the holder
none), and adds a second unit OTHER with one person, whose data must never reach unit DEMO's
officer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from certdesk.services import registry
from certdesk.services.access import Access, Principal
from certdesk.services.context import Context
from certdesk.services.demo import bootstrap
from certdesk.store.tables import audit_log, certificates
from certdesk.web.app import create_app
from portal_client import client_for, issue_for

# role -> demo person holding it
STAFF = {
    "holder": "demo-0001",
    "approver": "demo-0002",
    "unit_officer": "demo-it",
    "ra": "demo-ra",
    "ca_admin": "demo-ca",
    "auditor": "demo-audit",
}
OTHER_UNIT = "OTHER"
OTHER_PERSON = ("other-001", "Wang Elsewhere", "wang@other.example")


def active_der(ctx: Context, person_id: str) -> bytes:
    with ctx.db.read() as conn:
        der = conn.execute(
            select(certificates.c.der).where(
                certificates.c.person_id == person_id,
                certificates.c.state == "active",
                certificates.c.profile == "personal",
            )
        ).scalar_one()
    return bytes(der)


@dataclass
class Office:
    ctx: Context
    app: FastAPI
    ders: dict[str, bytes] = field(default_factory=dict)

    def principal(self, role: str) -> Principal:
        found = self.access.identify(self.ders[role])
        assert isinstance(found, Principal), found
        return found

    @property
    def access(self) -> Access:
        found: Access = self.app.state.services.access
        return found

    def csrf(self, role: str) -> str:
        return self.access.csrf_token(self.principal(role))

    def page(self, role: str | None, lang: str = "en") -> TestClient:
        """A browser presenting `role`'s certificate (None: no certificate)."""
        return client_for(self.app, self.ders[role] if role else None, lang)

    def api(self, role: str | None, csrf: bool = True) -> TestClient:
        """A script presenting `role`'s certificate, asking for JSON, with its CSRF header."""
        client = self.page(role)
        client.headers["Accept"] = "application/json"
        if role and csrf:
            client.headers["X-CSRF-Token"] = self.csrf(role)
        return client

    def last_seq(self) -> int:
        with self.ctx.db.read() as conn:
            return int(conn.execute(select(func.max(audit_log.c.seq))).scalar() or 0)

    def actions_since(self, seq: int) -> list[tuple[str, str, str]]:
        """(actor, action, object_id) of the audit records after `seq`."""
        with self.ctx.db.read() as conn:
            rows = conn.execute(
                select(audit_log.c.actor, audit_log.c.action, audit_log.c.object_id)
                .where(audit_log.c.seq > seq)
                .order_by(audit_log.c.seq)
            ).all()
        return [(r.actor, r.action, r.object_id) for r in rows]


def open_office(ctx: Context) -> Office:
    bootstrap(ctx)
    issue_for(ctx, STAFF["holder"])
    registry.add_unit(ctx, OTHER_UNIT, "Other Bureau", "Other Contact", "it@other.example")
    pid, name, email = OTHER_PERSON
    registry.add_person(ctx, pid, name, OTHER_UNIT, email, position_code="clerk")
    office = Office(ctx, create_app(ctx))
    office.ders = {role: active_der(ctx, pid) for role, pid in STAFF.items()}
    return office


# For tests whose behaviour does not depend on the database: run them on SQLite only (the
# bootstrap costs seconds on PostgreSQL). Tests of queries and transactions run on both.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
