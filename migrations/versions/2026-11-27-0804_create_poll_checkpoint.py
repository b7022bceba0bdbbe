"""Create the Elasticsearch poller's checkpoint table (one row per poll stream).

Revision ID: f3b78b1d58d1
Revises: 26f5243ae3de
Create Date: 2026-11-27 08:04:27.304030+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f3b78b1d58d1"
down_revision: str | None = "26f5243ae3de"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "poll_checkpoint",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("cursor_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("newest_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_poll_checkpoint")),
    )


def downgrade() -> None:
    op.drop_table("poll_checkpoint")
