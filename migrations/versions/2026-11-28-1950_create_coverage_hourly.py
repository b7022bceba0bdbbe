"""Create coverage_hourly: per hour and kind of request, what arrived (the coverage summary).

Revision ID: c0e1a2b3d4f5
Revises: 8a4c1e0d2b77
Create Date: 2026-11-28 19:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0e1a2b3d4f5"
down_revision: str | None = "8a4c1e0d2b77"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coverage_hourly",
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("api_group", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("subresource", sa.Text(), nullable=False),
        sa.Column("verb", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("request_bodies", sa.BigInteger(), nullable=False),
        sa.Column("response_bodies", sa.BigInteger(), nullable=False),
        sa.Column("other_stages", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "cluster",
            "hour",
            "api_group",
            "resource",
            "subresource",
            "verb",
            "level",
            "source",
            name=op.f("pk_coverage_hourly"),
        ),
    )


def downgrade() -> None:
    op.drop_table("coverage_hourly")
