"""Quarantined bytes that could not be redacted are kept encrypted: add raw_sealed.

Revision ID: 8a4c1e0d2b77
Revises: 7b1a0c3d5e03
Create Date: 2026-11-28 19:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8a4c1e0d2b77"
down_revision: str | None = "7b1a0c3d5e03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("quarantined_item", sa.Column("raw_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("quarantined_item", "raw_sealed")
