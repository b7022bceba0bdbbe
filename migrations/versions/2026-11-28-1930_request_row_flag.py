"""Add audit_event.is_request_row: the stored stage that stands for its request.

Revision ID: 7b1a0c3d5e01
Revises: 5c1d2e7a9b10
Create Date: 2026-11-28 19:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b1a0c3d5e01"
down_revision: str | None = "5c1d2e7a9b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "audit_event",
        sa.Column("is_request_row", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("audit_event", "is_request_row")
