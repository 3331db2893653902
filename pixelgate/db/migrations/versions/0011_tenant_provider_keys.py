"""tenants' own provider keys

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 15:00:00.000000

- `tenant_provider_keys`: a tenant's own API key per hosted provider, encrypted (Fernet);
- `tenants.own_keys_only`, `tenants.own_keys_billing`: its own keys only; what a job run with
  one costs;
- `jobs.own_key`: the job runs with its tenant's own key, as decided when it was accepted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_provider_keys",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "provider"),
    )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("own_keys_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "own_keys_billing", sa.String(length=16), nullable=False, server_default="free"
            )
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("own_key", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("own_key")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("own_keys_billing")
        batch_op.drop_column("own_keys_only")
    op.drop_table("tenant_provider_keys")
