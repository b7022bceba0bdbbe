"""`serve` with several worker processes (AUDIT_TIMELINE_WORKERS): uvicorn's supervisor binds
the port once and starts the workers on it; each builds the app from the settings `serve`
resolved, handed down in the environment.

Once per `serve`, in the parent, before the workers start: the embedded PostgreSQL, migrations,
the demo data, the TLS certificate (cli.py). In every worker: the app, and the ES poller, of
which only the one holding the advisory lock polls (the others stand by, as replicas do).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import Settings

_PREFIX = "AUDIT_TIMELINE_"


def freeze_for_serving() -> None:
    """Collector settings for a serving process, once its app is built."""
    # Everything loaded so far lives as long as the process: out of the collector's sight, a
    # full collection during a large batch pauses every thread for ms, not ~0.1 s. Fewer
    # young-generation passes keep a 50,000-event batch from triggering full ones again and
    # again (healthz p99 during a maximum batch ~130 ms -> ~25 ms, test_max_batch_latency.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def worker_environment(settings: Settings, metrics_dir: Path) -> dict[str, str]:
    """What a worker needs beyond the environment it inherits: what `serve` resolved or was
    told on its command line."""
    assert settings.database_url is not None  # resolved by serve (embedded or configured)
    env = {
        _PREFIX + "DATABASE_URL": settings.database_url.get_secret_value(),
        _PREFIX + "HOST": settings.host,
        _PREFIX + "PORT": str(settings.port),
        _PREFIX + "TLS_SELF_SIGNED": "false",  # made once, by serve: the files below
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    for name in ("tls_certfile", "tls_keyfile"):
        path = getattr(settings, name)
        if path is not None:
            env[_PREFIX + name.upper()] = str(path)
    return env


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection. asyncio
    turns it off only on sockets that say IPPROTO_TCP, and the socket uvicorn binds for its
    workers says 0: a response's headers and body then leave as two segments, the second
    after the client's delayed ACK (~40 ms added to every response)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def run_workers(settings: Settings, **uvicorn_options: Any) -> None:
    """Serve with settings.workers processes until stopped."""
    import uvicorn

    metrics_dir = Path(tempfile.mkdtemp(prefix="audit-timeline-metrics-"))
    os.environ.update(worker_environment(settings, metrics_dir))
    try:
        uvicorn.run(
            "app.workers:worker_app",
            factory=True,
            workers=settings.workers,
            http="app.workers:NoDelayH11Protocol",
            host=settings.host,
            port=settings.port,
            log_config=None,
            proxy_headers=False,
            **uvicorn_options,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_app() -> FastAPI:
    """The app of one worker (uvicorn calls this in each worker process)."""
    from app.logging import configure_logging
    from app.main import create_app

    settings = Settings()
    configure_logging(settings)
    app = create_app(settings)
    freeze_for_serving()
    return app
