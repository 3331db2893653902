"""jobs say whether they have a webhook

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 18:00:00.000000

- `jobs.has_webhook`: the job's request named a webhook (`job_webhooks`), so that the webhook
  outbox looks one up only for jobs that have one. Jobs recorded before this revision take it
  from `job_webhooks`, once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("has_webhook", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    jobs = sa.table("jobs", sa.column("id"), sa.column("has_webhook", sa.Boolean()))
    webhooks = sa.table("job_webhooks", sa.column("job_id"))
    op.execute(
        jobs.update()
        .where(sa.exists().where(webhooks.c.job_id == jobs.c.id))
        .values(has_webhook=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("has_webhook")
