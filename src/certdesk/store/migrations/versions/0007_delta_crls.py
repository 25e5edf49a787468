"""delta CRLs: the base of each published delta, and revocations by time per issuer

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crls") as batch_op:
        batch_op.add_column(sa.Column("base", sa.Integer(), nullable=True))
    op.create_index(
        "ix_certificates_issuer_revoked_at", "certificates", ["issuer", "revoked_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_certificates_issuer_revoked_at", table_name="certificates")
    with op.batch_alter_table("crls") as batch_op:
        batch_op.drop_column("base")
