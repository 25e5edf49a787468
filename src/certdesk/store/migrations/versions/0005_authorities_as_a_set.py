"""authorities as a set: role, generation, state and key id of each CA

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from cryptography import x509

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("authorities") as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(16), nullable=True))
        batch_op.add_column(
            sa.Column("generation", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(
            sa.Column("state", sa.String(16), nullable=False, server_default="active")
        )
        batch_op.add_column(sa.Column("key_id", sa.String(64), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT name, certificate_der FROM authorities")).all()
    for name, der in rows:
        ski = x509.load_der_x509_certificate(bytes(der)).extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        )
        conn.execute(
            sa.text("UPDATE authorities SET role = :role, key_id = :kid WHERE name = :name"),
            {"role": name, "kid": ski.value.digest.hex(), "name": name},
        )
    with op.batch_alter_table("authorities") as batch_op:
        batch_op.alter_column("role", existing_type=sa.String(16), nullable=False)
        batch_op.alter_column("key_id", existing_type=sa.String(64), nullable=False)
        batch_op.create_index("ix_authorities_key_id", ["key_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("authorities") as batch_op:
        batch_op.drop_index("ix_authorities_key_id")
        for column in ("key_id", "state", "generation", "role"):
            batch_op.drop_column(column)
