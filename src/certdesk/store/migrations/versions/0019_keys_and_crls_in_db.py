"""OCSP responder keys and published CRLs kept in the database (every machine reads them)

Revision ID: 0019
Revises: 0014
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ocsp_responders") as batch_op:
        batch_op.add_column(sa.Column("key_pem", sa.LargeBinary(), nullable=True))
        batch_op.alter_column("key_ref", existing_type=sa.Text(), nullable=True)
    with op.batch_alter_table("crls") as batch_op:
        batch_op.add_column(sa.Column("der", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crls") as batch_op:
        batch_op.drop_column("der")
    with op.batch_alter_table("ocsp_responders") as batch_op:
        batch_op.alter_column("key_ref", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("key_pem")
