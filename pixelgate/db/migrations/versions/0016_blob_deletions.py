"""blobs a refused request stored are deleted late

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 00:30:00.000000

- `blob_deletions`: blobs to delete once they are due, if nothing uses them by then (a refused
  request's inputs, which another replica's request may share).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_deletions",
        sa.Column("blob_key", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("blob_key"),
    )
    op.create_index("ix_blob_deletions_due_at", "blob_deletions", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_blob_deletions_due_at", table_name="blob_deletions")
    op.drop_table("blob_deletions")
