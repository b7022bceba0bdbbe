"""Create the timeline rollup event_rollup_hourly (hour x cluster x verb x stage x code), fill
it from the stored events, and keep it equal to audit_event on every INSERT, UPDATE and DELETE.

Data and triggers in one migration, as for coverage_hourly: audit_event is locked against
writes while the rollup is filled and the triggers created, so every event is counted once.

The triggers are statement-level with transition tables, so they see exactly the rows a
statement stored (ON CONFLICT DO NOTHING skips duplicates; COPY fires them too), and they work
on a partitioned audit_event (created on the parent). INSERT adds the new rows' counts, DELETE
subtracts the old rows', UPDATE does both (insert_events clears is_request_row on a superseded
stage: its request count moves). Summary rows are taken in key order, so concurrent batches
cannot deadlock on them. Dropping a partition fires nothing: prune deletes the rollup hours
below its cutoff itself (app/audit/rollups.py delete_rollups_before).

Revision ID: 9e1a2b3c4d50
Revises: d2a0b1c2d3e4
Create Date: 2026-11-28 22:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9e1a2b3c4d50"
down_revision: str | None = "d2a0b1c2d3e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMENSIONS = ("cluster", "verb", "stage", "response_code")
KEYS = ", ".join(DIMENSIONS)
# Add the signed counts of {rows} (audit_event columns and an integer `sign`: +1 for a row
# stored, -1 for a row gone), in key order.
ADD_SQL = (
    f"INSERT INTO event_rollup_hourly AS r (hour, {KEYS}, stage_events, requests)"
    f" SELECT date_trunc('hour', stage_at, 'UTC'), {KEYS},"
    " sum(sign), coalesce(sum(sign) FILTER (WHERE is_request_row), 0)"
    " FROM {rows} GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    f" ON CONFLICT (hour, {KEYS}) DO UPDATE SET"
    " stage_events = r.stage_events + EXCLUDED.stage_events,"
    " requests = r.requests + EXCLUDED.requests"
)
TRIGGERS = {
    "insert": ("REFERENCING NEW TABLE AS new_rows", "(SELECT *, 1 AS sign FROM new_rows) s"),
    "delete": ("REFERENCING OLD TABLE AS old_rows", "(SELECT *, -1 AS sign FROM old_rows) s"),
    "update": (
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "(SELECT *, 1 AS sign FROM new_rows UNION ALL SELECT *, -1 AS sign FROM old_rows) s",
    ),
}


def upgrade() -> None:
    op.create_table(
        "event_rollup_hourly",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cluster", sa.Text(), nullable=False),
        sa.Column("verb", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("stage_events", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ux_event_rollup_hourly_key",
        "event_rollup_hourly",
        ["hour", *DIMENSIONS],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.execute("LOCK TABLE audit_event IN SHARE ROW EXCLUSIVE MODE")
    op.execute(ADD_SQL.format(rows="(SELECT *, 1 AS sign FROM audit_event) s"))
    for event, (referencing, rows) in TRIGGERS.items():
        op.execute(
            f"CREATE FUNCTION audit_event_rollup_{event}() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN {ADD_SQL.format(rows=rows)}; RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER audit_event_rollup_{event} AFTER {event.upper()} ON audit_event"
            f" {referencing} FOR EACH STATEMENT EXECUTE FUNCTION audit_event_rollup_{event}()"
        )


def downgrade() -> None:
    for event in TRIGGERS:
        op.execute(f"DROP TRIGGER audit_event_rollup_{event} ON audit_event")
        op.execute(f"DROP FUNCTION audit_event_rollup_{event}()")
    op.drop_table("event_rollup_hourly")
