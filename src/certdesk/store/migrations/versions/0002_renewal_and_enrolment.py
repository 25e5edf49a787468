"""renewal (one in flight per certificate, used nonces, server secrets) and enrolment codes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from certdesk.store.tables import RENEWAL_IN_FLIGHT, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch_op:
        batch_op.create_index(
            "uq_certificates_one_renewal",
            ["replaces"],
            unique=True,
            sqlite_where=sa.text(RENEWAL_IN_FLIGHT),
            postgresql_where=sa.text(RENEWAL_IN_FLIGHT),
        )
    op.create_table(
        "used_nonces",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_used_nonces")),
    )
    op.create_index("ix_used_nonces_used_at", "used_nonces", ["used_at"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )
    op.create_table(
        "enrolment_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("certificate_serial", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.person_id"],
            name=op.f("fk_enrolment_codes_person_id_people"),
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_enrolment_codes")),
    )
    op.create_index("ix_enrolment_codes_person_id", "enrolment_codes", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_enrolment_codes_person_id", table_name="enrolment_codes")
    op.drop_table("enrolment_codes")
    op.drop_table("server_secrets")
    op.drop_index("ix_used_nonces_used_at", table_name="used_nonces")
    op.drop_table("used_nonces")
    with op.batch_alter_table("certificates") as batch_op:
        batch_op.drop_index("uq_certificates_one_renewal")
