"""Create the audit event, quarantine and file checkpoint tables.

Revision ID: 26f5243ae3de
Revises:
Create Date: 2026-11-27 07:55:53.982835+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "26f5243ae3de"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Object-name substring search (q=) uses a trigram index. pg_trgm is a trusted extension.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column("audit_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=True),
        sa.Column("verb", sa.Text(), nullable=False),
        sa.Column("request_uri", sa.Text(), nullable=True),
        sa.Column("api_group", sa.Text(), nullable=True),
        sa.Column("api_version", sa.Text(), nullable=True),
        sa.Column("resource", sa.Text(), nullable=True),
        sa.Column("subresource", sa.Text(), nullable=True),
        sa.Column("namespace", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("user_uid", sa.Text(), nullable=True),
        sa.Column("user_groups", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("impersonated_user", sa.Text(), nullable=True),
        sa.Column("impersonated_groups", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("source_ips", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("response_status", sa.Text(), nullable=True),
        sa.Column("response_reason", sa.Text(), nullable=True),
        sa.Column("response_message", sa.Text(), nullable=True),
        sa.Column("authz_decision", sa.Text(), nullable=True),
        sa.Column("authz_reason", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stage_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_meta", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("request_object", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response_object", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("is_redacted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "ingested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
        sa.UniqueConstraint(
            "cluster", "audit_id", "stage", name=op.f("uq_audit_event_cluster_audit_id_stage")
        ),
    )
    op.create_index(
        "ix_audit_event_cluster_stage_at",
        "audit_event",
        ["cluster", "stage_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_audit_event_impersonated_user_stage_at",
        "audit_event",
        ["impersonated_user", "stage_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_audit_event_name_trgm",
        "audit_event",
        ["name"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_audit_event_namespace_stage_at",
        "audit_event",
        ["namespace", "stage_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_audit_event_object",
        "audit_event",
        ["cluster", "resource", "namespace", "name", "stage_at"],
        unique=False,
    )
    op.create_index(
        "ix_audit_event_resource_stage_at",
        "audit_event",
        ["resource", "stage_at", "id"],
        unique=False,
    )
    op.create_index("ix_audit_event_response_code", "audit_event", ["response_code"], unique=False)
    op.create_index("ix_audit_event_stage_at_id", "audit_event", ["stage_at", "id"], unique=False)
    op.create_index(
        "ix_audit_event_username_stage_at",
        "audit_event",
        ["username", "stage_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_audit_event_verb_stage_at", "audit_event", ["verb", "stage_at", "id"], unique=False
    )
    op.create_table(
        "file_checkpoint",
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_file_checkpoint")),
    )
    op.create_table(
        "quarantined_item",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("raw_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("is_redacted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_item")),
        sa.UniqueConstraint(
            "source",
            "cluster",
            "raw_sha256",
            name=op.f("uq_quarantined_item_source_cluster_raw_sha256"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(
        "ix_quarantined_item_received_at", "quarantined_item", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_quarantined_item_received_at", table_name="quarantined_item")
    op.drop_table("quarantined_item")
    op.drop_table("file_checkpoint")
    op.drop_index("ix_audit_event_verb_stage_at", table_name="audit_event")
    op.drop_index("ix_audit_event_username_stage_at", table_name="audit_event")
    op.drop_index("ix_audit_event_stage_at_id", table_name="audit_event")
    op.drop_index("ix_audit_event_response_code", table_name="audit_event")
    op.drop_index("ix_audit_event_resource_stage_at", table_name="audit_event")
    op.drop_index("ix_audit_event_object", table_name="audit_event")
    op.drop_index("ix_audit_event_namespace_stage_at", table_name="audit_event")
    op.drop_index(
        "ix_audit_event_name_trgm",
        table_name="audit_event",
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.drop_index("ix_audit_event_impersonated_user_stage_at", table_name="audit_event")
    op.drop_index("ix_audit_event_cluster_stage_at", table_name="audit_event")
    op.drop_table("audit_event")
