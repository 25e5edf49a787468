"""index on certificates.replaces (renewal looks it up at every request)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch_op:
        batch_op.create_index("ix_certificates_replaces", ["replaces"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("certificates") as batch_op:
        batch_op.drop_index("ix_certificates_replaces")
