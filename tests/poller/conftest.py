"""A real Elasticsearch 7.17 for the poller tests, started once per session (tests/es_server.py).

Each test that asks for `es_url` starts from empty Calico indices with the templates in place.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.es_server import EsServer
from tests.poller.es_data import delete_indices, put_templates

logger = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def es_server() -> Iterator[EsServer]:
    with tempfile.TemporaryDirectory(prefix="at-es-") as tmp:
        began = time.monotonic()
        server = EsServer(Path(tmp))
        server.start()
        # Visible with -rA / in the session summary: how long the real node took to start.
        print(  # noqa: T201
            f"\nElasticsearch {server.url} ready in {time.monotonic() - began:.1f}s"
            f" (JVM start to yellow: {server.startup_seconds:.1f}s)"
        )
        put_templates(server.url)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def es_url(es_server: EsServer) -> Iterator[str]:
    if not es_server.running():  # a test that stopped it failed half-way
        es_server.start()
    delete_indices(es_server.url)
    yield es_server.url
    if es_server.running():
        delete_indices(es_server.url)
