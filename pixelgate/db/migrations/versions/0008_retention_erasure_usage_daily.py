"""per-tenant retention, erased tenants, job input blobs and usage by day

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 09:00:00.000000

- `tenants.retention_days` (a tenant's own retention) and `tenants.erased_at` (a tombstone);
- `job_input_blobs`: the blobs each job's inputs use, filled from `jobs.inputs`, so deleting a
  blob asks by an index probe whether a job still needs it;
- `usage_daily`: spend, images and settled jobs per tenant, UTC day and model, filled from the
  ledger's settlements, so usage reports read it instead of the ledger;
- an index on `idempotency_keys.job_id`, to forget a deleted job's keys.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_keys_job_id", ["job_id"], unique=False)
    op.create_table(
        "job_input_blobs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "blob_key"),
    )
    with op.batch_alter_table("job_input_blobs", schema=None) as batch_op:
        batch_op.create_index("ix_job_input_blobs_blob_key", ["blob_key"], unique=False)
    op.create_table(
        "usage_daily",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "day", "model"),
    )
    bind = op.get_bind()
    _fill_input_blobs(bind)
    _fill_usage_daily(bind)


def _fill_input_blobs(bind: sa.Connection) -> None:
    """One row per (job, blob) of every job with inputs, read in pages of the primary key."""
    after = ""
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, inputs FROM jobs WHERE inputs IS NOT NULL AND id > :after"
                " ORDER BY id LIMIT :limit"
            ),
            {"after": after, "limit": BATCH},
        ).all()
        if not rows:
            return
        refs = {
            (job_id, key)
            for job_id, inputs in rows
            for key in _blob_keys(json.loads(inputs) if isinstance(inputs, str) else inputs)
        }
        if refs:
            bind.execute(
                sa.text("INSERT INTO job_input_blobs (job_id, blob_key) VALUES (:job, :key)"),
                [{"job": job, "key": key} for job, key in sorted(refs)],
            )
        after = rows[-1][0]


def _blob_keys(inputs: Any) -> set[str]:
    if not isinstance(inputs, dict):
        return set()
    return {
        stored["blob_key"]
        for stored in inputs.values()
        if isinstance(stored, dict) and isinstance(stored.get("blob_key"), str)
    }


def _fill_usage_daily(bind: sa.Connection) -> None:
    """The settlements of the ledger, summed per tenant, UTC day and model."""
    if bind.dialect.name == "sqlite":
        day = "substr(created_at, 1, 10)"  # stored as 'YYYY-MM-DD HH:MM:SS...' in UTC
    else:
        day = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    bind.execute(
        sa.text(
            "INSERT INTO usage_daily (tenant_id, day, model, spent, images, jobs)"
            f" SELECT tenant_id, {day}, model, sum(amount), sum(images), count(*)"
            f" FROM ledger_entries WHERE kind = 'settle' GROUP BY tenant_id, {day}, model"
        )
    )


def downgrade() -> None:
    op.drop_table("usage_daily")
    with op.batch_alter_table("job_input_blobs", schema=None) as batch_op:
        batch_op.drop_index("ix_job_input_blobs_blob_key")
    op.drop_table("job_input_blobs")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_keys_job_id")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
        batch_op.drop_column("retention_days")
