"""Partition audit_event by week of stage_at; retention becomes dropping a partition.

The table is rebuilt: renamed aside, a partitioned table with the same columns, defaults,
indexes and triggers created in its place (index and trigger definitions are read from the
catalog, so every index earlier migrations made is kept exactly), the rows moved, the old table
dropped. A unique index on a partitioned table must include the partition key, so the primary
key becomes (id, stage_at) and the identity (cluster, audit_id, stage) is kept unique by the
ingest path itself (app/audit/queries.py insert_events, under its per-request locks); the
database keeps (cluster, audit_id, stage, stage_at) unique as a safety net. id now comes from
a plain sequence (identity columns on partitioned tables need PostgreSQL 17).

Weekly partitions are made for every week holding rows within the horizon (400 days back, 3
weeks ahead) and for the recent and coming weeks; everything else lands in audit_event_default.
The app keeps creating weeks ahead (app/audit/partitions.py).

Revision ID: d2a0b1c2d3e4
Revises: c0e1a2b3d4f6
Create Date: 2026-11-28 22:00:00+00:00
"""

from collections.abc import Sequence
from datetime import UTC, timedelta

from alembic import op
from sqlalchemy import text

revision: str = "d2a0b1c2d3e4"
down_revision: str | None = "c0e1a2b3d4f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "audit_event_unpartitioned"
_OLD_KEYS = ("pk_audit_event", "uq_audit_event_cluster_audit_id_stage")
_NEW_KEYS = ("pk_audit_event", "uq_audit_event_cluster_audit_id_stage_stage_at")

# Week starts (Monday 00:00 UTC) that get a partition: weeks with rows inside the horizon, and
# the 8 weeks before now to 2 weeks after it.
_WEEKS_SQL = f"""
SELECT DISTINCT w FROM (
    SELECT date_trunc('week', stage_at, 'UTC') AS w FROM {_OLD}
    UNION ALL
    SELECT generate_series(
        date_trunc('week', now() - interval '8 weeks', 'UTC'),
        date_trunc('week', now() + interval '2 weeks', 'UTC'),
        interval '1 week')
) weeks
WHERE w + interval '1 week' >= now() - interval '400 days' AND w <= now() + interval '21 days'
ORDER BY w
"""


def _index_and_trigger_definitions(table: str, skip: Sequence[str]) -> list[str]:
    bind = op.get_bind()
    indexes = bind.execute(
        text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t ORDER BY 1"),
        {"t": table},
    ).all()
    triggers = bind.execute(
        text(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger"
            " WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal ORDER BY tgname"
        ),
        {"t": table},
    ).all()
    return [definition for name, definition in indexes if name not in skip] + [
        row[0] for row in triggers
    ]


def _rebuild(*, partitioned: bool) -> None:
    """Move audit_event into a new table of the other kind, keeping indexes and triggers."""
    bind = op.get_bind()
    # Week arithmetic (generate_series, + interval '1 week') follows the session's TimeZone:
    # in a zone with daylight saving time it would shift the bounds by an hour.
    op.execute("SET LOCAL TimeZone = 'UTC'")
    op.execute("LOCK TABLE audit_event IN ACCESS EXCLUSIVE MODE")
    keys = _OLD_KEYS if partitioned else _NEW_KEYS
    definitions = _index_and_trigger_definitions("audit_event", keys)
    index_names = bind.execute(
        text("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_event'")
    ).scalars()
    skip = set(keys)
    to_drop = [name for name in index_names if name not in skip]
    trigger_names = bind.execute(
        text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass"
            " AND NOT tgisinternal"
        )
    ).scalars()
    for name in list(trigger_names):
        op.execute(f"DROP TRIGGER {name} ON audit_event")
    for name in to_drop:
        op.execute(f"DROP INDEX {name}")
    op.execute(f"ALTER TABLE audit_event RENAME TO {_OLD}")
    for name in keys:
        op.execute(f"ALTER TABLE {_OLD} DROP CONSTRAINT {name}")
    # Continue where the old sequence stood (ids of rolled-back or deleted rows stay unused).
    next_id = bind.execute(
        text(
            f"SELECT greatest(coalesce(max(id), 0) + 1,"
            f" (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END"
            f"  FROM audit_event_id_seq)) FROM {_OLD}"
        )
    ).scalar_one()
    if partitioned:
        op.execute(f"ALTER TABLE {_OLD} ALTER COLUMN id DROP IDENTITY")
        op.execute(
            f"CREATE TABLE audit_event (LIKE {_OLD} INCLUDING DEFAULTS)"
            " PARTITION BY RANGE (stage_at)"
        )
        op.execute(f"CREATE SEQUENCE audit_event_id_seq START {int(next_id)}")
        op.execute("ALTER SEQUENCE audit_event_id_seq OWNED BY audit_event.id")
        op.execute(
            "ALTER TABLE audit_event ALTER COLUMN id SET DEFAULT nextval('audit_event_id_seq')"
        )
        op.execute("CREATE TABLE audit_event_default PARTITION OF audit_event DEFAULT")
        for (moment,) in bind.execute(text(_WEEKS_SQL)).all():
            week = moment.astimezone(UTC)
            op.execute(
                text(
                    f"CREATE TABLE audit_event_p{week:%Y%m%d} PARTITION OF audit_event"
                    f" FOR VALUES FROM ('{week.isoformat()}')"
                    f" TO ('{(week + timedelta(days=7)).isoformat()}')"
                )
            )
    else:
        op.execute(f"ALTER TABLE {_OLD} ALTER COLUMN id DROP DEFAULT")
        op.execute("DROP SEQUENCE IF EXISTS audit_event_id_seq")
        op.execute(f"CREATE TABLE audit_event (LIKE {_OLD} INCLUDING DEFAULTS)")
        op.execute(
            f"ALTER TABLE audit_event ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY"
            f" (START {int(next_id)})"
        )
    columns = ", ".join(
        bind.execute(
            text(
                "SELECT quote_ident(attname) FROM pg_attribute"
                " WHERE attrelid = CAST(:t AS regclass)"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": _OLD},
        ).scalars()
    )
    op.execute(f"INSERT INTO audit_event ({columns}) SELECT {columns} FROM {_OLD}")
    op.execute(f"DROP TABLE {_OLD}")
    if partitioned:
        op.execute(
            "ALTER TABLE audit_event ADD CONSTRAINT pk_audit_event PRIMARY KEY (id, stage_at)"
        )
        op.execute(
            "ALTER TABLE audit_event ADD CONSTRAINT uq_audit_event_cluster_audit_id_stage_stage_at"
            " UNIQUE (cluster, audit_id, stage, stage_at)"
        )
    else:
        op.execute("ALTER TABLE audit_event ADD CONSTRAINT pk_audit_event PRIMARY KEY (id)")
        op.execute(
            "ALTER TABLE audit_event ADD CONSTRAINT uq_audit_event_cluster_audit_id_stage"
            " UNIQUE (cluster, audit_id, stage)"
        )
    for definition in definitions:
        # pg_indexes names the table schema-qualified; the new table has the same name.
        op.execute(definition.replace(" ON ONLY ", " ON "))
    op.execute("ANALYZE audit_event")


def upgrade() -> None:
    _rebuild(partitioned=True)


def downgrade() -> None:
    _rebuild(partitioned=False)
