"""webhook signing secrets kept encrypted

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 18:00:00.000000

- `webhook_secrets.key`, `.previous_key` (in clear) become `ciphertext`,
  `previous_ciphertext`: each secret encrypted by the vault of tenants' provider keys (Fernet,
  `service.provider_keys.KeyVault`), handed to `db.migrate.upgrade` as its `cipher`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pixelgate.db.migrate import CIPHER, Cipher

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

SECRETS = sa.table(
    "webhook_secrets",
    sa.column("tenant_id", sa.String),
    sa.column("key", sa.String),
    sa.column("previous_key", sa.String),
    sa.column("ciphertext", sa.Text),
    sa.column("previous_ciphertext", sa.Text),
)


def _cipher() -> Cipher:
    cipher: Cipher | None = op.get_context().config.attributes.get(CIPHER)  # type: ignore[union-attr]
    if cipher is None:
        raise RuntimeError(
            "Migration 0015 encrypts the stored webhook signing secrets: run it through "
            "pixelgate (`pixelgate serve` or `pixelgate worker`), which has their key"
        )
    return cipher


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(SECRETS.c.tenant_id, SECRETS.c.key, SECRETS.c.previous_key)
    ).all()
    cipher = _cipher() if rows else None  # refused before any change
    with op.batch_alter_table("webhook_secrets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ciphertext", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("previous_ciphertext", sa.Text(), nullable=True))
    if cipher is not None:
        for tenant_id, key, previous_key in rows:
            connection.execute(
                SECRETS.update()
                .where(SECRETS.c.tenant_id == tenant_id)
                .values(
                    ciphertext=cipher.encrypt(key),
                    previous_ciphertext=cipher.encrypt(previous_key) if previous_key else None,
                )
            )
    with op.batch_alter_table("webhook_secrets", schema=None) as batch_op:
        batch_op.alter_column("ciphertext", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("previous_key")
        batch_op.drop_column("key")


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(SECRETS.c.tenant_id, SECRETS.c.ciphertext, SECRETS.c.previous_ciphertext)
    ).all()
    cipher = _cipher() if rows else None
    with op.batch_alter_table("webhook_secrets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("previous_key", sa.String(length=100), nullable=True))
    if cipher is not None:
        for tenant_id, ciphertext, previous in rows:
            what = f"tenant {tenant_id!r} for signing webhooks"
            connection.execute(
                SECRETS.update()
                .where(SECRETS.c.tenant_id == tenant_id)
                .values(
                    key=cipher.decrypt(ciphertext, what=what),
                    previous_key=cipher.decrypt(previous, what=what) if previous else None,
                )
            )
    with op.batch_alter_table("webhook_secrets", schema=None) as batch_op:
        batch_op.alter_column("key", existing_type=sa.String(length=100), nullable=False)
        batch_op.drop_column("previous_ciphertext")
        batch_op.drop_column("ciphertext")
