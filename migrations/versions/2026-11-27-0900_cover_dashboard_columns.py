"""Make the keyset index cover the dashboard's facet and histogram columns.

Revision ID: 5c1d2e7a9b10
Revises: f3b78b1d58d1
Create Date: 2026-11-27 09:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5c1d2e7a9b10"
down_revision: str | None = "f3b78b1d58d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERED = [
    "verb",
    "resource",
    "subresource",
    "namespace",
    "username",
    "impersonated_user",
    "response_code",
    "cluster",
]


def upgrade() -> None:
    op.drop_index("ix_audit_event_stage_at_id", table_name="audit_event")
    op.create_index(
        "ix_audit_event_stage_at_id",
        "audit_event",
        ["stage_at", "id"],
        postgresql_include=COVERED,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_event_stage_at_id", table_name="audit_event")
    op.create_index("ix_audit_event_stage_at_id", "audit_event", ["stage_at", "id"])
