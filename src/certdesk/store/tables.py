"""The schema. Core tables rather than ORM classes: the issuing path is hot and stays explicit.

Serial numbers are up to 159-bit integers, kept as lowercase hex text (no leading zeros) so both
SQLite and PostgreSQL index them the same way. Times are timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


UTC = UTCDateTime()

units = Table(
    "units",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("contact_name", String(255), nullable=False, default=""),
    Column("contact_email", String(255), nullable=False, default=""),
    Column("contact_phone", String(64), nullable=False, default=""),
    Column("created_at", UTC, nullable=False),
)

positions = Table(
    "positions",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
)

roles = Table(
    "roles",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
)

position_roles = Table(
    "position_roles",
    metadata,
    Column("position_code", ForeignKey("positions.code"), primary_key=True),
    Column("role_code", ForeignKey("roles.code"), primary_key=True),
)

role_permissions = Table(
    "role_permissions",
    metadata,
    Column("role_code", ForeignKey("roles.code"), primary_key=True),
    Column("permission", String(128), primary_key=True),
)

people = Table(
    "people",
    metadata,
    Column("person_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("unit_code", ForeignKey("units.code"), nullable=False, index=True),
    Column("position_code", ForeignKey("positions.code"), nullable=True),
    Column("email", String(255), nullable=False),
    Column("phone", String(64), nullable=False, default=""),
    Column("state", String(16), nullable=False),
    Column("created_at", UTC, nullable=False),
    Column("updated_at", UTC, nullable=False),
    # the language of the holder's reminders ("zh-CN" | "en"), set by the office
    Column("locale", String(8), nullable=False, server_default="zh-CN"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("model", String(128), nullable=False, default=""),
    Column("state", String(16), nullable=False),
    Column("keeper_id", ForeignKey("people.person_id"), nullable=True, index=True),
    Column("pin_changed", Boolean, nullable=False, default=False),
    Column("updated_at", UTC, nullable=False),
)

authorities = Table(
    "authorities",
    metadata,
    Column("name", String(32), primary_key=True),  # "root", "issuing", later "issuing-2"…
    Column("role", String(16), nullable=False),  # "root" | "issuing"
    Column("generation", Integer, nullable=False, server_default="1"),
    Column("state", String(16), nullable=False, server_default="active"),  # AuthorityState
    Column("key_id", String(64), nullable=False, index=True),  # subjectKeyIdentifier, hex
    Column("subject", Text, nullable=False),
    Column("key_type", String(16), nullable=False),
    Column("key_ref", Text, nullable=False),  # file path or PKCS#11 URI (without PIN)
    Column("certificate_der", LargeBinary, nullable=False),
    Column("crl_number", Integer, nullable=False, default=0),
    Column("created_at", UTC, nullable=False),
)

RENEWAL_IN_FLIGHT = "replaces IS NOT NULL AND state IN ('reserved', 'pending_install')"

certificates = Table(
    "certificates",
    metadata,
    Column("serial", String(40), primary_key=True),
    Column("issuer", ForeignKey("authorities.name"), nullable=False),
    Column("profile", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("person_id", ForeignKey("people.person_id"), nullable=True),
    Column("token_serial", ForeignKey("tokens.serial"), nullable=True),
    Column("subject", Text, nullable=False, default=""),
    Column("not_before", UTC, nullable=True),
    Column("not_after", UTC, nullable=True),
    Column("fingerprint", String(64), nullable=True, unique=True),
    Column("der", LargeBinary, nullable=True),
    Column("reserved_at", UTC, nullable=False),
    Column("issued_at", UTC, nullable=True),
    Column("revoked_at", UTC, nullable=True),
    Column("revocation_reason", String(32), nullable=True),
    Column("replaces", String(40), nullable=True),
    CheckConstraint("der IS NOT NULL OR state IN ('reserved', 'abandoned')", name="signed_has_der"),
    Index("ix_certificates_person_state", "person_id", "state"),
    Index("ix_certificates_issuer_state", "issuer", "state"),
    # What went on an issuer's CRL since its last publication (the publishing job, delta CRLs).
    Index("ix_certificates_issuer_revoked_at", "issuer", "revoked_at"),
    # Renewal looks up "the certificate that replaces this one" on every request.
    Index("ix_certificates_replaces", "replaces"),
    # A person has at most one active personal certificate, whatever the code above does.
    Index(
        "uq_certificates_one_active_personal",
        "person_id",
        unique=True,
        sqlite_where=text("state = 'active' AND profile = 'personal'"),
        postgresql_where=text("state = 'active' AND profile = 'personal'"),
    ),
    # One renewal in flight per certificate: a racing second renewal gets the first one's result.
    Index(
        "uq_certificates_one_renewal",
        "replaces",
        unique=True,
        sqlite_where=text(RENEWAL_IN_FLIGHT),
        postgresql_where=text(RENEWAL_IN_FLIGHT),
    ),
)

crls = Table(
    "crls",
    metadata,
    Column("issuer", ForeignKey("authorities.name"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("this_update", UTC, nullable=False),
    Column("next_update", UTC, nullable=False),
    Column("entries", Integer, nullable=False),
    Column("base", Integer, nullable=True),  # a delta CRL's base CRL number; NULL: complete
    Column("der", LargeBinary, nullable=True),  # the CRL as signed (NULL: before 0019, or building)
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UTC, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("hash"),
)

# One row (id = 1): the chain's head. Writers update it first, which serialises appends on every
# database without relying on table locks.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Nonces are stateless (HMAC-signed, see services/nonces.py); only used ones are kept, until they
# would have expired anyway.
used_nonces = Table(
    "used_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("used_at", UTC, nullable=False, index=True),
)

# Server-side secrets shared by every process of one installation (e.g. the nonce HMAC key).
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", UTC, nullable=False),
)

# One-time enrolment codes (EST simpleenroll); only a hash of the code is kept.
enrolment_codes = Table(
    "enrolment_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("person_id", ForeignKey("people.person_id"), nullable=False, index=True),
    Column("created_by", String(255), nullable=False),
    Column("created_at", UTC, nullable=False),
    Column("expires_at", UTC, nullable=False),
    Column("used_at", UTC, nullable=True),
    Column("certificate_serial", String(40), nullable=True),
    # SHA-256 of the SubjectPublicKeyInfo the code was spent for: a retry with it finishes
    Column("key_sha256", String(64), nullable=True),
)

# What the office publishes on the portal (rule 13): announcements and downloadable forms.
announcements = Table(
    "announcements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Column("author", String(255), nullable=False),
    Column("published_at", UTC, nullable=False),
)

forms = Table(
    "forms",
    metadata,
    Column("name", String(128), primary_key=True),  # file name as downloaded
    Column("title", String(255), nullable=False),
    Column("media_type", String(128), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("uploaded_by", String(255), nullable=False),
    Column("uploaded_at", UTC, nullable=False),
)

# Delegated OCSP responders (RFC 6960 §4.2.2.2): one current per issuing CA, renewed before half
# its life is gone; the certificate is also a row of `certificates` (profile ocsp_signing).
ocsp_responders = Table(
    "ocsp_responders",
    metadata,
    Column("serial", String(40), primary_key=True),
    Column("issuer", ForeignKey("authorities.name"), nullable=False, index=True),
    # the key: PKCS#8 PEM encrypted with the CA passphrase, shared by every machine; `key_ref`
    # names the file a responder made before 0019 kept it in (adopted into `key_pem` on load)
    Column("key_pem", LargeBinary, nullable=True),
    Column("key_ref", Text, nullable=True),
    Column("certificate_der", LargeBinary, nullable=False),
    Column("not_before", UTC, nullable=False),
    Column("not_after", UTC, nullable=False),
    Column("created_at", UTC, nullable=False),
)

# Pre-signed OCSP responses (canonical SHA-1 CertID, no nonce), one per certificate: what the
# responder serves and nginx's files hold, as long as `status` agrees with the certificate's.
ocsp_responses = Table(
    "ocsp_responses",
    metadata,
    Column("issuer", ForeignKey("authorities.name"), primary_key=True),
    Column("serial", String(40), primary_key=True),
    Column("status", String(16), nullable=False),  # good | revoked | unknown
    Column("revoked_at", UTC, nullable=True),
    Column("der", LargeBinary, nullable=False),
    Column("this_update", UTC, nullable=False),
    Column("next_update", UTC, nullable=False, index=True),
    Column("responder", String(40), nullable=False),  # ocsp_responders.serial that signed it
)

# What must be sent (reminders, digests, webhook events), written in the transaction that decided
# it. (topic, channel) is unique: two jobs deciding the same reminder queue it once.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "topic", String(128), nullable=False
    ),  # "reminder:<serial>:<days>", "digest:<unit>:<day>"
    Column("channel", String(80), nullable=False),  # "email" | "webhook:<name>"
    Column("recipient", String(255), nullable=False),  # an address, or the endpoint's name
    Column("locale", String(8), nullable=False),
    Column("payload", Text, nullable=False),  # JSON: what the message says, rendered when sent
    Column("state", String(16), nullable=False),  # domain/reminders.py OutboxState
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTC, nullable=False),  # when pending; the lease's end when sending
    Column("last_error", Text, nullable=True),
    Column("created_at", UTC, nullable=False),
    Column("sent_at", UTC, nullable=True),
    UniqueConstraint("topic", "channel", name="uq_outbox_topic_channel"),
    Index("ix_outbox_state_next", "state", "next_attempt_at"),
)

# The office's paperwork as requests (departure, position change, lost token, re-enrolment).
# `state` changes only through services/lifecycle.py; `details` and `outcome` are JSON text.
office_requests = Table(
    "office_requests",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("person_id", ForeignKey("people.person_id"), nullable=False, index=True),
    Column("unit_code", String(64), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("details", Text, nullable=False, default="{}"),
    Column("remark", Text, nullable=False, default=""),
    Column("filed_by", String(255), nullable=False),
    Column("filed_at", UTC, nullable=False),
    Column("decided_by", String(255), nullable=True),
    Column("decided_at", UTC, nullable=True),
    Column("reason", Text, nullable=True),  # why rejected, or why carrying it out failed
    Column("outcome", Text, nullable=True),
    Column("attachment_name", String(128), nullable=True),
    Column("attachment_type", String(128), nullable=True),
    Column("attachment", LargeBinary, nullable=True),
    Index("ix_office_requests_state_filed", "state", "filed_at"),
)
