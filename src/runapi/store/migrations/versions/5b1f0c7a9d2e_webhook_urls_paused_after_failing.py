"""webhook URLs paused after failing for days

`webhook_failing_urls` remembers since when a key's receiver has failed without a break; past
`webhooks.pause_after_seconds` the URL is stopped like a 410 one, with `reason` telling which.

Revision ID: 5b1f0c7a9d2e
Revises: e20ce86c97cf
Create Date: 2026-11-26 16:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5b1f0c7a9d2e"
down_revision = "e20ce86c97cf"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_failing_urls",
        sa.Column("api_key_id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("api_key_id", "url", name=op.f("pk_webhook_failing_urls")),
    )
    with op.batch_alter_table("webhook_stopped_urls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=16), server_default="gone", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("webhook_stopped_urls", schema=None) as batch_op:
        batch_op.drop_column("reason")
    op.drop_table("webhook_failing_urls")
