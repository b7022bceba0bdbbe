"""Fill coverage_hourly from the stored events, then keep it up to date on every insert.

Data and trigger in one migration on purpose: the events table is locked against writes while
the summary is back-filled and the trigger created, so every event is counted exactly once
(none before the trigger is missed, none is counted by both).

The trigger is statement-level with a transition table: it sees only the rows an INSERT
actually stored (ON CONFLICT DO NOTHING skips duplicates), adds their counts in the same
transaction, and takes the summary rows in key order, so concurrent batches cannot deadlock on
them.

Revision ID: c0e1a2b3d4f6
Revises: c0e1a2b3d4f5
Create Date: 2026-11-28 19:51:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c0e1a2b3d4f6"
down_revision: str | None = "c0e1a2b3d4f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One request is counted once: by its final stage (ResponseComplete or Panic).
_FINAL = "stage IN ('ResponseComplete', 'Panic')"
SUMMARY_SQL = f"""
INSERT INTO coverage_hourly AS c (
    cluster, hour, api_group, resource, subresource, verb, level, source,
    requests, request_bodies, response_bodies, other_stages, last_seen_at)
SELECT cluster, date_trunc('hour', stage_at, 'UTC'), coalesce(api_group, ''),
    coalesce(resource, ''), coalesce(subresource, ''), verb, coalesce(level, ''), source,
    count(*) FILTER (WHERE {_FINAL}),
    count(*) FILTER (WHERE {_FINAL} AND request_object IS NOT NULL),
    count(*) FILTER (WHERE {_FINAL} AND response_object IS NOT NULL),
    count(*) FILTER (WHERE NOT {_FINAL}),
    max(stage_at)
FROM {{rows}}
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
ON CONFLICT (cluster, hour, api_group, resource, subresource, verb, level, source) DO UPDATE SET
    requests = c.requests + EXCLUDED.requests,
    request_bodies = c.request_bodies + EXCLUDED.request_bodies,
    response_bodies = c.response_bodies + EXCLUDED.response_bodies,
    other_stages = c.other_stages + EXCLUDED.other_stages,
    last_seen_at = GREATEST(c.last_seen_at, EXCLUDED.last_seen_at)
"""


def upgrade() -> None:
    op.execute("LOCK TABLE audit_event IN SHARE ROW EXCLUSIVE MODE")
    op.execute(SUMMARY_SQL.format(rows="audit_event"))
    op.execute(
        "CREATE FUNCTION audit_event_coverage() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {SUMMARY_SQL.format(rows='new_rows')}; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_event_coverage AFTER INSERT ON audit_event"
        " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
        " EXECUTE FUNCTION audit_event_coverage()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_event_coverage ON audit_event")
    op.execute("DROP FUNCTION audit_event_coverage()")
    op.execute("TRUNCATE coverage_hourly")
