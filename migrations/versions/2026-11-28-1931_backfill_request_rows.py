"""Data: flag the most complete stored stage of every request (is_request_row).

Revision ID: 7b1a0c3d5e02
Revises: 7b1a0c3d5e01
Create Date: 2026-11-28 19:31:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7b1a0c3d5e02"
down_revision: str | None = "7b1a0c3d5e01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Same order as app.audit.request_rows.STAGE_RANK (migrations never import app).
_RANK = (
    "CASE stage WHEN 'Panic' THEN 4 WHEN 'ResponseComplete' THEN 3"
    " WHEN 'ResponseStarted' THEN 2 ELSE 1 END"
)


def upgrade() -> None:
    # Runs before the indexes on the flag exist (next revision): one pass, no index upkeep.
    op.execute(
        "UPDATE audit_event SET is_request_row = true WHERE id IN ("
        " SELECT DISTINCT ON (cluster, audit_id) id FROM audit_event"
        f" ORDER BY cluster, audit_id, {_RANK} DESC, id)"
    )


def downgrade() -> None:
    op.execute("UPDATE audit_event SET is_request_row = false WHERE is_request_row")
