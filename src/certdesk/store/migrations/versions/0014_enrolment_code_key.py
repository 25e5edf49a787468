"""enrolment codes remember the key they were spent for (a retry with that key finishes)

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrolment_codes") as batch_op:
        batch_op.add_column(sa.Column("key_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrolment_codes") as batch_op:
        batch_op.drop_column("key_sha256")
