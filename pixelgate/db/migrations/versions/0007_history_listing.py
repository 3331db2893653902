"""jobs keep their prompt in a column; indexes for cursor pages of jobs and files

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt", sa.Text(), nullable=True))
        # pages are ordered by (created_at, id): the id ends each index, so a page is read in
        # index order with no sort even where creation times tie
        batch_op.drop_index("ix_jobs_tenant_created")
        batch_op.drop_index("ix_jobs_tenant_status_created")
        batch_op.create_index("ix_jobs_tenant_created", ["tenant_id", "created_at", "id"])
        batch_op.create_index(
            "ix_jobs_tenant_status_created", ["tenant_id", "status", "created_at", "id"]
        )
        batch_op.create_index(
            "ix_jobs_tenant_model_created", ["tenant_id", "model", "created_at", "id"]
        )
    # the prompt searched by `q`, until now only inside the options
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE jobs SET prompt = options::json ->> 'prompt'")
    else:
        op.execute("UPDATE jobs SET prompt = json_extract(options, '$.prompt')")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index("ix_files_tenant_created", ["tenant_id", "created_at", "id"])
        batch_op.create_index("ix_files_job_created", ["job_id", "created_at", "id"])
        # both are the leading column of a new index, which serves their queries
        batch_op.drop_index("ix_files_tenant_id")
        batch_op.drop_index("ix_files_job_id")


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index("ix_files_job_id", ["job_id"])
        batch_op.create_index("ix_files_tenant_id", ["tenant_id"])
        batch_op.drop_index("ix_files_job_created")
        batch_op.drop_index("ix_files_tenant_created")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_tenant_model_created")
        batch_op.drop_index("ix_jobs_tenant_status_created")
        batch_op.drop_index("ix_jobs_tenant_created")
        batch_op.create_index(
            "ix_jobs_tenant_status_created", ["tenant_id", "status", "created_at"]
        )
        batch_op.create_index("ix_jobs_tenant_created", ["tenant_id", "created_at"])
        batch_op.drop_column("prompt")
