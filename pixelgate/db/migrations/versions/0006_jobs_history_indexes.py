"""indexes that keep each request's queries independent of how many jobs are stored

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 07:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_tenant_created", ["tenant_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_jobs_tenant_status_created", ["tenant_id", "status", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_jobs_cache_lookup",
            ["cache_key", "cached", "status", "finished_at", "tenant_id"],
            unique=False,
        )
        # both are the leading column of a new index, which serves their queries
        batch_op.drop_index("ix_jobs_tenant_id")
        batch_op.drop_index("ix_jobs_cache_key")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_cache_key", ["cache_key"], unique=False)
        batch_op.create_index("ix_jobs_tenant_id", ["tenant_id"], unique=False)
        batch_op.drop_index("ix_jobs_cache_lookup")
        batch_op.drop_index("ix_jobs_tenant_status_created")
        batch_op.drop_index("ix_jobs_tenant_created")
