"""What `serve` tells the person who started it, in plain sentences: where to open it, what is
open to whom, what the demo loaded. Builds text only; cli.py prints it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from app.audit.queries import StoreResult
from app.settings import Settings

ANY_ADDRESS = {"0.0.0.0", "::", ""}
# Loggers whose per-file lines and expected warnings the demo summary replaces.
DEMO_QUIET_LOGGERS = ("app.ingest.file_import", "app.audit.queries")


def _local_addresses() -> list[str]:
    """This machine's non-loopback addresses, as far as it can tell without sending anything."""
    found: list[str] = []
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    except OSError:
        pass
    try:
        # Connecting a UDP socket sends no packet; it only picks the outgoing interface.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            found.append(str(probe.getsockname()[0]))
    except OSError:
        pass
    return [a for a in dict.fromkeys(found) if not a.startswith("127.")]


def listen_urls(settings: Settings) -> list[str]:
    """URLs a browser can open: for a wildcard bind, loopback plus this machine's addresses."""
    scheme = "https" if settings.tls_certfile else "http"
    hosts = ["127.0.0.1", *_local_addresses()] if settings.host in ANY_ADDRESS else [settings.host]
    return [f"{scheme}://{f'[{h}]' if ':' in h else h}:{settings.port}/" for h in hosts]


def access_sentence(settings: Settings) -> str:
    """One sentence: who may use what on this bind."""
    if settings.is_loopback:
        if settings.ingest_tokens or settings.access_tokens or settings.auth_proxy_addresses:
            return "Only this machine can connect; the configured tokens are required."
        return "Only this machine can connect, so nothing asks for a token."
    ingest = (
        "POST /ingest takes the INGEST_TOKENS bearer tokens"
        if settings.ingest_token_map()
        else "POST /ingest refuses everything until AUDIT_TIMELINE_INGEST_TOKENS is set"
    )
    readers = []
    if settings.access_token_map():
        readers.append("an ACCESS_TOKENS bearer token")
    if settings.auth_proxy_addresses:
        readers.append("a sign-in through the auth proxy")
    reading = (
        f"the UI and API need {' or '.join(readers)}"
        if readers
        else "the UI and API answer 401 to everyone until AUDIT_TIMELINE_ACCESS_TOKENS or"
        " AUDIT_TIMELINE_AUTH_PROXY_ADDRESSES is set"
    )
    return (
        f"Reachable from other machines: /healthz, /readyz, /metrics and /docs are open to anyone;"
        f" {ingest}; {reading}."
    )


def demo_summary(result: StoreResult, *, files: int) -> str:
    """The one line `serve --demo` prints about what it loaded."""
    source = f"{files} real sample files" if files else "generated sample events"
    line = f"demo: {result.stored} events stored from {source}"
    if result.duplicates:
        line += f", {result.duplicates} already there"
    if result.quarantined:
        line += (
            f"; {result.quarantined} quarantined, as expected: the real samples include"
            " malformed and conflicting events on purpose (see /api/v1/quarantine)"
        )
    return line


@contextmanager
def quiet_demo_loading() -> Iterator[None]:
    """Keep the per-file and expected-conflict lines of the demo load out of the console."""
    loggers = [logging.getLogger(name) for name in DEMO_QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
