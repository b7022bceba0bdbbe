"""`audit-timeline serve` in a process of its own on a free loopback port, for tests that need
the real server (uvicorn, the CLI's start-up) rather than the ASGI app in-process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import TEST_REDACTION_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(database_url: str, folder: Path, **env: str) -> Iterator[str]:
    """Run the server until the block ends; yield its base URL once /readyz answers 200.
    env: extra AUDIT_TIMELINE_ settings, without the prefix."""
    port = free_port()
    environment = {
        **os.environ,
        "AUDIT_TIMELINE_DATABASE_URL": database_url,
        "AUDIT_TIMELINE_DATA_DIR": str(folder / "data"),
        "AUDIT_TIMELINE_REDACTION_KEY": TEST_REDACTION_KEY,
        "AUDIT_TIMELINE_PORT": str(port),
        "AUDIT_TIMELINE_LOG_LEVEL": "WARNING",
        **{f"AUDIT_TIMELINE_{name}": value for name, value in env.items()},
    }
    log = folder / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=environment,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
