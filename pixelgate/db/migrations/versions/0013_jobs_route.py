"""jobs record their fallbacks

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 16:00:00.000000

- `jobs.route`: a request's fallbacks (`db.job_records.JobRoute`): the model asked for, the
  models left to try with their options and prices, and every try; null for a job with none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("route", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("route")
