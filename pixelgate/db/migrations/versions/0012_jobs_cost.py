"""jobs record what they cost

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 15:00:00.000000

- `jobs.cost`: the amount the job's settlement charged, in micro-units of the currency; 0 until
  it settles and for a job that pays nothing. Jobs that settled before this revision take it
  from their ledger entries (`settle`), once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cost", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    op.execute(
        "UPDATE jobs SET cost = (SELECT SUM(ledger_entries.amount) FROM ledger_entries"
        " WHERE ledger_entries.job_id = jobs.id AND ledger_entries.kind = 'settle')"
        " WHERE EXISTS (SELECT 1 FROM ledger_entries"
        " WHERE ledger_entries.job_id = jobs.id AND ledger_entries.kind = 'settle')"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("cost")
