"""Tables: normalised audit events, quarantined input, and the positions of resumable readers.

The raw event (minus its bodies, which have columns of their own) is the source of truth;
the other columns are derived from it for filtering and display.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Sequence,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# What the timeline's facets and histogram read: covered by its keyset indexes.
_DASHBOARD_COLUMNS = (
    "verb",
    "resource",
    "subresource",
    "namespace",
    "username",
    "impersonated_user",
    "response_code",
    "cluster",
    "stage",
)


class AuditEvent(Base):
    __tablename__ = "audit_event"

    # Partitioned by week of stage_at (app/audit/partitions.py): keys include stage_at.
    id: Mapped[int] = mapped_column(BigInteger, Sequence("audit_event_id_seq"), primary_key=True)
    cluster: Mapped[str] = mapped_column(Text)
    audit_id: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(Text)
    verb: Mapped[str] = mapped_column(Text)
    request_uri: Mapped[str | None] = mapped_column(Text)
    api_group: Mapped[str | None] = mapped_column(Text)
    api_version: Mapped[str | None] = mapped_column(Text)
    resource: Mapped[str | None] = mapped_column(Text)
    subresource: Mapped[str | None] = mapped_column(Text)
    namespace: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    username: Mapped[str | None] = mapped_column(Text)
    user_uid: Mapped[str | None] = mapped_column(Text)
    user_groups: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    impersonated_user: Mapped[str | None] = mapped_column(Text)
    impersonated_groups: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    source_ips: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    user_agent: Mapped[str | None] = mapped_column(Text)
    response_code: Mapped[int | None] = mapped_column(Integer)
    response_status: Mapped[str | None] = mapped_column(Text)
    response_reason: Mapped[str | None] = mapped_column(Text)
    response_message: Mapped[str | None] = mapped_column(Text)
    authz_decision: Mapped[str | None] = mapped_column(Text)
    authz_reason: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stage_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    # Facts from the transport, not the event (ES index and _id, Calico's added fields, file).
    source_meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    request_object: Mapped[Any | None] = mapped_column(JSONB)
    response_object: Mapped[Any | None] = mapped_column(JSONB)
    # The event as received (secrets redacted) without requestObject/responseObject.
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB)
    is_redacted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    ingested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # True on exactly one stored stage per request (cluster, audit_id): its most complete one
    # (Panic > ResponseComplete > ResponseStarted > RequestReceived). Maintained by
    # insert_events in the ingest transaction; the timeline counts requests by it.
    is_request_row: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    __table_args__ = (
        # (cluster, audit_id, stage) is one event's identity. A partitioned table can only
        # enforce uniqueness with the partition key in it; insert_events keeps the identity
        # itself unique across partitions (under its per-request locks).
        UniqueConstraint("cluster", "audit_id", "stage", "stage_at"),
        # Keyset order of the timeline, and the same order under each equality filter.
        # INCLUDE: facets and the histogram read these from the index alone (index-only scan,
        # about 3x faster than reading the wide rows; bench/page_timings.py).
        Index(
            "ix_audit_event_stage_at_id",
            "stage_at",
            "id",
            postgresql_include=[*_DASHBOARD_COLUMNS, "is_request_row"],
        ),
        # The dashboard's default view: one row per request, changes only, newest first.
        Index(
            "ix_audit_event_request_change_at",
            "stage_at",
            "id",
            postgresql_include=list(_DASHBOARD_COLUMNS),
            postgresql_where=text(
                "is_request_row AND verb IN ('create', 'update', 'patch', 'delete', "
                "'deletecollection')"
            ),
        ),
        Index("ix_audit_event_namespace_stage_at", "namespace", "stage_at", "id"),
        Index("ix_audit_event_resource_stage_at", "resource", "stage_at", "id"),
        Index("ix_audit_event_username_stage_at", "username", "stage_at", "id"),
        Index("ix_audit_event_impersonated_user_stage_at", "impersonated_user", "stage_at", "id"),
        Index("ix_audit_event_verb_stage_at", "verb", "stage_at", "id"),
        Index("ix_audit_event_cluster_stage_at", "cluster", "stage_at", "id"),
        Index("ix_audit_event_response_code", "response_code"),
        # user=prefix* (LIKE 'prefix%' in any collation) and group= filters.
        Index(
            "ix_audit_event_username_prefix",
            "username",
            postgresql_ops={"username": "text_pattern_ops"},
        ),
        Index(
            "ix_audit_event_impersonated_user_prefix",
            "impersonated_user",
            postgresql_ops={"impersonated_user": "text_pattern_ops"},
            postgresql_where=text("impersonated_user IS NOT NULL"),
        ),
        Index("ix_audit_event_user_groups", "user_groups", postgresql_using="gin"),
        Index(
            "ix_audit_event_impersonated_groups",
            "impersonated_groups",
            postgresql_using="gin",
            postgresql_where=text("impersonated_groups IS NOT NULL"),
        ),
        # Object history: one object's events in time order.
        Index(
            "ix_audit_event_object",
            "cluster",
            "resource",
            "namespace",
            "name",
            "stage_at",
        ),
        Index(
            "ix_audit_event_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        {"postgresql_partition_by": "RANGE (stage_at)"},
    )


class CoverageHourly(Base):
    """What arrived, per hour and kind of request: the summary the coverage page reads.

    Kept by the trigger audit_event_coverage (migration 2026-11-28-1951) from the rows each
    INSERT actually stored, so retries and duplicates are not counted twice. A request is
    counted once, by its final stage (ResponseComplete or Panic); other stages are counted
    apart. Pruning events does not lower these counts: they say what was received.
    """

    __tablename__ = "coverage_hourly"

    cluster: Mapped[str] = mapped_column(Text, primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    api_group: Mapped[str] = mapped_column(Text, primary_key=True)
    resource: Mapped[str] = mapped_column(Text, primary_key=True)
    subresource: Mapped[str] = mapped_column(Text, primary_key=True)
    verb: Mapped[str] = mapped_column(Text, primary_key=True)
    level: Mapped[str] = mapped_column(Text, primary_key=True)
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    request_bodies: Mapped[int] = mapped_column(BigInteger)
    response_bodies: Mapped[int] = mapped_column(BigInteger)
    other_stages: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- Rollup of audit_event: exact counts for the timeline's histogram, totals and facets ---
# Kept by the statement-level triggers audit_event_rollup_{insert,update,delete} (migration
# 2026-11-28-2230) from the rows each statement actually changed, in the same transaction:
# stage_events counts stored stage-events, requests those flagged is_request_row (one per
# request), so both units of the timeline are exact. response_code keeps NULLs (a unique index
# with NULLS NOT DISTINCT), so filters read it as they read audit_event. Dropping a partition
# fires nothing: prune calls rollups.delete_rollups_before.
# Only dimensions with few values: hour x namespace or x user hardly compresses (measured:
# about one rollup row per event at 2M events), and would double the cost of every insert.
ROLLUP_DIMENSIONS = ("cluster", "verb", "stage", "response_code")
event_rollup_hourly = Table(
    "event_rollup_hourly",
    Base.metadata,
    Column("hour", DateTime(timezone=True), nullable=False),
    Column("cluster", Text, nullable=False),
    Column("verb", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("response_code", Integer, nullable=True),
    Column("stage_events", BigInteger, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Index(
        "ux_event_rollup_hourly_key",
        "hour",
        *ROLLUP_DIMENSIONS,
        unique=True,
        postgresql_nulls_not_distinct=True,
    ),
)


class QuarantinedItem(Base):
    """Input that could not be parsed or validated: kept byte for byte with the reason."""

    __tablename__ = "quarantined_item"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    cluster: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    origin: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # The same bytes from the same sender are kept once, so retried batches do not pile up.
    raw_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    # True when secret values were replaced in `raw` before it was stored.
    is_redacted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Bytes that did not parse and held (or may hold) secrets: the received bytes encrypted
    # (app/audit/seal.py); `raw` then holds only a redacted copy, or nothing.
    raw_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        Index("ix_quarantined_item_received_at", "received_at"),
        UniqueConstraint("source", "cluster", "raw_sha256", postgresql_nulls_not_distinct=True),
    )


class FileCheckpoint(Base):
    """How far `import --follow` has read a log file (saved with the events it covers)."""

    __tablename__ = "file_checkpoint"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    cluster: Mapped[str] = mapped_column(Text)
    inode: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PollCheckpoint(Base):
    """How far the Elasticsearch poller has stored one stream (saved with the events it covers).

    `cursor_at` is the newest sort time stored; a cycle re-reads from it minus the overlap window.
    """

    __tablename__ = "poll_checkpoint"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    cursor_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    newest_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
