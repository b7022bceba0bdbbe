"""Create the timeline rollups (event_rollup_hourly, event_rollup_wide), fill them from the
stored events, and keep them equal to audit_event on every INSERT, UPDATE and DELETE.

Data and triggers in one migration, as for coverage_hourly: audit_event is locked against
writes while the rollups are filled and the triggers created, so every event is counted once.

The triggers are statement-level with transition tables, so they see exactly the rows a
statement stored (ON CONFLICT DO NOTHING skips duplicates; COPY fires them too), and they work
on a partitioned audit_event (created on the parent). INSERT adds the new rows' counts, DELETE
subtracts the old rows', UPDATE does both (insert_events clears is_request_row on a superseded
stage: its request count moves). Summary rows are taken in key order, so concurrent batches
cannot deadlock on them. Dropping a partition fires nothing: prune deletes the rollup hours
below its cutoff itself (app/audit/rollups.py delete_rollups_before).

Revision ID: 9e1a2b3c4d50
Revises: c0e1a2b3d4f6
Create Date: 2026-11-28 22:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9e1a2b3c4d50"
down_revision: str | None = "c0e1a2b3d4f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NARROW = ("cluster", "verb", "response_code")
WIDE = (
    *NARROW,
    "stage",
    "namespace",
    "resource",
    "api_group",
    "subresource",
    "username",
    "impersonated_user",
)
NOT_NULL = ("cluster", "verb", "stage")


def _add_sql(table: str, dimensions: Sequence[str], rows: str) -> str:
    """Add the signed counts of `rows` (audit_event columns and an integer `sign`: +1 for a
    row stored, -1 for a row gone) to table, in key order."""
    keys = ", ".join(dimensions)
    positions = ", ".join(str(i) for i in range(1, len(dimensions) + 2))
    return (
        f"INSERT INTO {table} AS r (hour, {keys}, stage_events, requests)"
        f" SELECT date_trunc('hour', stage_at, 'UTC'), {keys},"
        " sum(sign), coalesce(sum(sign) FILTER (WHERE is_request_row), 0)"
        f" FROM {rows} GROUP BY {positions} ORDER BY {positions}"
        f" ON CONFLICT (hour, {keys}) DO UPDATE SET"
        " stage_events = r.stage_events + EXCLUDED.stage_events,"
        " requests = r.requests + EXCLUDED.requests;"
    )


def _body(rows: str) -> str:
    return _add_sql("event_rollup_hourly", NARROW, rows) + " " + _add_sql(
        "event_rollup_wide", WIDE, rows
    )


_TRIGGERS = {
    "insert": ("REFERENCING NEW TABLE AS new_rows", "(SELECT *, 1 AS sign FROM new_rows) s"),
    "delete": ("REFERENCING OLD TABLE AS old_rows", "(SELECT *, -1 AS sign FROM old_rows) s"),
    "update": (
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "(SELECT *, 1 AS sign FROM new_rows UNION ALL SELECT *, -1 AS sign FROM old_rows) s",
    ),
}


def _create_table(name: str, dimensions: Sequence[str]) -> None:
    op.create_table(
        name,
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *(
            sa.Column(
                d,
                sa.Integer() if d == "response_code" else sa.Text(),
                nullable=d not in NOT_NULL,
            )
            for d in dimensions
        ),
        sa.Column("stage_events", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        f"ux_{name}_key",
        name,
        ["hour", *dimensions],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )


def upgrade() -> None:
    _create_table("event_rollup_hourly", NARROW)
    _create_table("event_rollup_wide", WIDE)
    for column in ("namespace", "resource", "username"):
        op.create_index(
            f"ix_event_rollup_wide_{column}_hour", "event_rollup_wide", [column, "hour"]
        )
    op.execute("LOCK TABLE audit_event IN SHARE ROW EXCLUSIVE MODE")
    for table, dimensions in (("event_rollup_hourly", NARROW), ("event_rollup_wide", WIDE)):
        op.execute(_add_sql(table, dimensions, "(SELECT *, 1 AS sign FROM audit_event) s"))
    for event, (referencing, rows) in _TRIGGERS.items():
        op.execute(
            f"CREATE FUNCTION audit_event_rollup_{event}() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN {_body(rows)} RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER audit_event_rollup_{event} AFTER {event.upper()} ON audit_event"
            f" {referencing} FOR EACH STATEMENT EXECUTE FUNCTION audit_event_rollup_{event}()"
        )


def downgrade() -> None:
    for event in _TRIGGERS:
        op.execute(f"DROP TRIGGER audit_event_rollup_{event} ON audit_event")
        op.execute(f"DROP FUNCTION audit_event_rollup_{event}()")
    op.drop_table("event_rollup_wide")
    op.drop_table("event_rollup_hourly")
