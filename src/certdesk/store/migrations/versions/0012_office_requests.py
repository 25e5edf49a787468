"""office requests: departure, position change, lost token, re-enrolment

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from certdesk.store.tables import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "office_requests",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("unit_code", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("remark", sa.Text(), nullable=False),
        sa.Column("filed_by", sa.String(length=255), nullable=False),
        sa.Column("filed_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("attachment_name", sa.String(length=128), nullable=True),
        sa.Column("attachment_type", sa.String(length=128), nullable=True),
        sa.Column("attachment", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.person_id"],
            name=op.f("fk_office_requests_person_id_people"),
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_office_requests")),
    )
    op.create_index(
        op.f("ix_office_requests_person_id"), "office_requests", ["person_id"], unique=False
    )
    op.create_index(
        op.f("ix_office_requests_unit_code"), "office_requests", ["unit_code"], unique=False
    )
    op.create_index(
        "ix_office_requests_state_filed", "office_requests", ["state", "filed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_table("office_requests")
