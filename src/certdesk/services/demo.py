"""First-run set-up of the embedded default: demo CA, unit, roles, a person, the portal's TLS key.

Every step checks what exists first, so running it again changes nothing.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from certdesk.services import registry
from certdesk.services.authorities import ISSUING, ROOT, get_authority
from certdesk.services.ca_hierarchy import export_certificates, init_hierarchy
from certdesk.services.context import Context
from certdesk.services.crl_publish import publish_crl
from certdesk.services.files import atomic_write
from certdesk.services.issuance import Issuance
from certdesk.services.server_tls import ensure_tls_certificate
from certdesk.store import registry as registry_store
from certdesk.store.migrate import upgrade

ROLES: dict[str, tuple[str, list[str]]] = {
    "holder": ("Certificate holder", ["portal.home", "budget.view"]),
    "finance_clerk": ("Finance clerk", ["budget.view", "payment.create"]),
    "finance_approver": ("Finance approver", ["budget.view", "payment.approve"]),
    "unit_officer": (
        "Unit officer",
        ["unit.people.view", "unit.expiry.view", "unit.requests.file"],
    ),
    "ra_officer": (
        "RA officer",
        [
            "ra.units.manage",
            "ra.people.manage",
            "ra.tokens.manage",
            "ra.certs.manage",
            "ra.codes.manage",
            "ra.content.manage",
            "ra.campaign.view",
            "ra.campaign.remind",
            "ra.requests.manage",
            "ra.positions.manage",
            "unit.requests.file",  # may file too (for anyone: ra.requests.manage sees all units)
            "audit.view",
        ],
    ),
    "ca_admin": (
        "CA administrator",
        ["ca.view", "ca.crl.publish", "ca.rollover", "ra.campaign.view"],
    ),
    "auditor": ("Auditor", ["audit.view", "audit.verify"]),
}
POSITIONS: dict[str, tuple[str, list[str]]] = {
    "clerk": ("Finance clerk", ["holder", "finance_clerk"]),
    "approver": ("Finance approver", ["holder", "finance_approver"]),
    "it_contact": ("Unit technical contact", ["holder", "unit_officer"]),
    "ra": ("Registration officer", ["holder", "ra_officer"]),
    "ca_admin": ("CA administrator", ["holder", "ca_admin"]),
    "auditor": ("Auditor", ["holder", "auditor"]),
}
DEMO_UNIT = ("DEMO", "Demo Finance Bureau", "Demo Contact", "it@demo.example", "0771-0000000")
DEMO_PERSON = ("demo-0001", "Demo Holder", "DEMO", "holder@demo.example", "clerk")
# One person per role, so every page of the portal can be tried (PKCS#12 files in var/demo).
DEMO_PASSPHRASE = "demo-passphrase"
DEMO_STAFF = [
    ("demo-0002", "Demo Approver", "approver"),
    ("demo-ra", "Demo Registration Officer", "ra"),
    ("demo-it", "Demo Unit Contact", "it_contact"),
    ("demo-ca", "Demo CA Administrator", "ca_admin"),
    ("demo-audit", "Demo Auditor", "auditor"),
]


@dataclass
class BootstrapReport:
    created: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.created.append(what)


@dataclass(frozen=True)
class DemoPerson:
    person_id: str
    name: str
    position: str  # the position's name, e.g. "Registration officer"
    p12: Path | None  # the PKCS#12 file to import into a browser; None: enrol onto a token


@dataclass(frozen=True)
class DemoGuide:
    """What `certdesk init` tells at the end: where the portal answers and how to log in."""

    url: str
    root_pem: Path
    passphrase: str
    people: list[DemoPerson]


def demo_guide(ctx: Context) -> DemoGuide:
    folder = ctx.config.data_dir / "demo"
    holder_id, holder_name, _unit, _email, holder_position = DEMO_PERSON
    people = [DemoPerson(holder_id, holder_name, POSITIONS[holder_position][0], None)]
    for person_id, name, position in DEMO_STAFF:
        p12 = folder / f"{person_id}.p12"
        people.append(
            DemoPerson(person_id, name, POSITIONS[position][0], p12 if p12.exists() else None)
        )
    return DemoGuide(
        url=ctx.config.base_url,
        root_pem=ctx.config.data_dir / "pki" / "root.pem",
        passphrase=DEMO_PASSPHRASE,
        people=people,
    )


def ensure_passphrase_file(ctx: Context) -> None:
    """The demo keeps a random CA passphrase in <data_dir>/ca/passphrase (0600)."""
    if ctx.config.ca.passphrase or ctx.config.ca.passphrase_file:
        return
    path = ctx.config.data_dir / "ca" / "passphrase"
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")


def bootstrap(ctx: Context) -> BootstrapReport:
    report = BootstrapReport()
    upgrade(ctx.db)
    ensure_passphrase_file(ctx)
    with ctx.db.read() as conn:
        has_root = get_authority(conn, ROOT) is not None
        has_roles = bool(registry_store.role_codes(conn))
        has_unit = registry_store.get_unit(conn, DEMO_UNIT[0]) is not None
        has_person = registry_store.get_person(conn, DEMO_PERSON[0]) is not None
    if not has_root:
        init_hierarchy(ctx)
        report.note("CA hierarchy")
    else:
        export_certificates(ctx)
    if not has_roles:
        for code, (name, perms) in ROLES.items():
            registry.define_role(ctx, code, name, perms)
        for code, (name, role_codes) in POSITIONS.items():
            registry.define_position(ctx, code, name, role_codes)
        report.note("roles and positions")
    if not has_unit:
        registry.add_unit(ctx, *DEMO_UNIT)
        report.note(f"unit {DEMO_UNIT[0]}")
    if not has_person:
        pid, name, unit, email, position = DEMO_PERSON
        registry.add_person(ctx, pid, name, unit, email, position_code=position)
        report.note(f"person {pid}")
    ensure_demo_staff(ctx, report)
    ensure_demo_content(ctx, report)
    if ensure_tls_certificate(ctx):
        report.note("portal TLS certificate")
    for issuer in (ROOT, ISSUING):
        if not (ctx.config.data_dir / "pki" / f"{issuer}.crl").exists():
            publish_crl(ctx, issuer)
            report.note(f"{issuer} CRL")
    return report


def ensure_demo_staff(ctx: Context, report: BootstrapReport) -> None:
    """One person per role, each with a PKCS#12 file (passphrase DEMO_PASSPHRASE) to import into
    a browser, so that every part of the portal can be tried without a token."""
    from certdesk.services.enrolment.pkcs12 import enroll_pkcs12
    from certdesk.store.certificates import active_personal_serial

    folder = ctx.config.data_dir / "demo"
    issuance: Issuance | None = None
    for person_id, name, position in DEMO_STAFF:
        with ctx.db.read() as conn:
            known = registry_store.get_person(conn, person_id) is not None
            has_cert = known and active_personal_serial(conn, person_id)
        if not known:
            email = f"{person_id}@demo.example"
            registry.add_person(ctx, person_id, name, DEMO_UNIT[0], email, position_code=position)
        target = folder / f"{person_id}.p12"
        if has_cert or target.exists():
            continue
        issuance = issuance or Issuance(ctx)
        _issued, p12 = enroll_pkcs12(issuance.issue, ctx, person_id, DEMO_PASSPHRASE)
        atomic_write(target, p12, mode=0o600)
        report.note(f"{target}")


REVOCATION_LETTER = """证书吊销申请函 / Certificate revocation letter

致证书受理点 / To the registration office:

因本单位人员 ______（身份证号/人员编号 ______）已调离 / 离职，
申请吊销其数字证书（序列号 ______），并交回 USB Key（序列号 ______）。

Our staff member ______ (person id ______) has left the unit. Please revoke
the certificate (serial ______) and take back the USB key (serial ______).

单位（盖章）/ Unit (seal): ______    日期 / Date: ______
"""

POSITION_FORM = """岗位变更申请表 / Position change form

人员编号 / Person id: ______    姓名 / Name: ______
原岗位 / Current position: ______    新岗位 / New position: ______
生效日期 / From: ______

岗位变更后，业务权限由受理点调整，无需更换证书。
After the change the office adjusts the person's permissions; the certificate stays.

单位技术联系人签字 / Unit technical contact: ______    单位（盖章）/ Unit (seal): ______
"""


def ensure_demo_content(ctx: Context, report: BootstrapReport) -> None:
    """The notice's example forms and a first announcement (rule 13)."""
    from certdesk.services.content import (
        list_announcements,
        list_forms,
        publish_announcement,
        upload_form,
    )

    if not list_forms(ctx):
        demo = ctx.acting_as("demo")
        upload_form(
            demo,
            "revocation-letter.txt",
            "Revocation letter / 证书吊销申请函",
            REVOCATION_LETTER.encode(),
        )
        upload_form(
            demo,
            "position-change.txt",
            "Position change form / 岗位变更申请表",
            POSITION_FORM.encode(),
        )
        report.note("forms")
    if not list_announcements(ctx, limit=1):
        publish_announcement(
            ctx.acting_as("demo"),
            "Renewal in the last month / 证书到期前一个月内更新",
            "Certificates can be renewed only in the last 30 days of their validity: insert "
            "your USB key and run certdesk renew. 证书仅可在有效期最后 30 天内更新。",
        )
        report.note("announcement")
