"""OCSP: delegated responder certificates and pre-signed responses

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from certdesk.store.tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocsp_responders",
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("issuer", sa.String(32), nullable=False),
        sa.Column("key_ref", sa.Text(), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer"], ["authorities.name"], name="fk_ocsp_responders_issuer_authorities"
        ),
        sa.PrimaryKeyConstraint("serial", name="pk_ocsp_responders"),
    )
    op.create_index("ix_ocsp_responders_issuer", "ocsp_responders", ["issuer"])
    op.create_table(
        "ocsp_responses",
        sa.Column("issuer", sa.String(32), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("this_update", UTCDateTime(), nullable=False),
        sa.Column("next_update", UTCDateTime(), nullable=False),
        sa.Column("responder", sa.String(40), nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer"], ["authorities.name"], name="fk_ocsp_responses_issuer_authorities"
        ),
        sa.PrimaryKeyConstraint("issuer", "serial", name="pk_ocsp_responses"),
    )
    op.create_index("ix_ocsp_responses_next_update", "ocsp_responses", ["next_update"])


def downgrade() -> None:
    op.drop_index("ix_ocsp_responses_next_update", table_name="ocsp_responses")
    op.drop_table("ocsp_responses")
    op.drop_index("ix_ocsp_responders_issuer", table_name="ocsp_responders")
    op.drop_table("ocsp_responders")
