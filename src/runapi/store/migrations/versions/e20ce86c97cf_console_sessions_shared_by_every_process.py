"""console sessions shared by every process

With several gateway workers, sessions held in one process's memory signed people out whenever
another worker answered; they now live here (the token's SHA-256, never the token).

Revision ID: e20ce86c97cf
Revises: acdb255e7166
Create Date: 2026-11-26 14:35:07.799317
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e20ce86c97cf"
down_revision = "acdb255e7166"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("principal", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_sessions")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_console_sessions_expires", ["expires_at"], unique=False)
        batch_op.create_index("ix_console_sessions_key", ["key_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_console_sessions_key")
        batch_op.drop_index("ix_console_sessions_expires")

    op.drop_table("console_sessions")
