"""Indexes for one row per request (default changes view), user prefixes and groups.

Revision ID: 7b1a0c3d5e03
Revises: 7b1a0c3d5e02
Create Date: 2026-11-28 19:32:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b1a0c3d5e03"
down_revision: str | None = "7b1a0c3d5e02"
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
CHANGE_ONLY = (
    "is_request_row AND verb IN ('create', 'update', 'patch', 'delete', 'deletecollection')"
)


def upgrade() -> None:
    op.drop_index("ix_audit_event_stage_at_id", table_name="audit_event")
    op.create_index(
        "ix_audit_event_stage_at_id",
        "audit_event",
        ["stage_at", "id"],
        postgresql_include=[*COVERED, "stage", "is_request_row"],
    )
    op.create_index(
        "ix_audit_event_request_change_at",
        "audit_event",
        ["stage_at", "id"],
        postgresql_include=[*COVERED, "stage"],
        postgresql_where=sa.text(CHANGE_ONLY),
    )
    op.create_index(
        "ix_audit_event_username_prefix",
        "audit_event",
        ["username"],
        postgresql_ops={"username": "text_pattern_ops"},
    )
    op.create_index(
        "ix_audit_event_impersonated_user_prefix",
        "audit_event",
        ["impersonated_user"],
        postgresql_ops={"impersonated_user": "text_pattern_ops"},
        postgresql_where=sa.text("impersonated_user IS NOT NULL"),
    )
    op.create_index(
        "ix_audit_event_user_groups", "audit_event", ["user_groups"], postgresql_using="gin"
    )
    op.create_index(
        "ix_audit_event_impersonated_groups",
        "audit_event",
        ["impersonated_groups"],
        postgresql_using="gin",
        postgresql_where=sa.text("impersonated_groups IS NOT NULL"),
    )


def downgrade() -> None:
    for name in (
        "ix_audit_event_impersonated_groups",
        "ix_audit_event_user_groups",
        "ix_audit_event_impersonated_user_prefix",
        "ix_audit_event_username_prefix",
        "ix_audit_event_request_change_at",
        "ix_audit_event_stage_at_id",
    ):
        op.drop_index(name, table_name="audit_event")
    op.create_index(
        "ix_audit_event_stage_at_id", "audit_event", ["stage_at", "id"], postgresql_include=COVERED
    )
