"""The poller as its own process (`audit-timeline poll [--once]`, called by app/cli.py).

Builds the engine, client and signal handling around Poller.run_forever(); SIGTERM/SIGINT
finish the page in hand (its checkpoint committed) and exit. Imports nothing from the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from app.settings import Settings

logger = logging.getLogger(__name__)

# `poll --once` gives up after this many consecutive failures instead of retrying forever.
ONCE_MAX_FAILURES = 4


async def poll(settings: Settings, database_url: str, *, once: bool) -> int:
    """Run the poller until stopped (or one pass); return the process exit code."""
    from app.db import make_engine
    from app.poller.loop import make_poller
    from app.redaction_key import make_redactor

    engine = make_engine(database_url, pool_size=2)
    poller = make_poller(settings, engine, make_redactor(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        total = await poller.run_forever(
            stop, once=once, max_failures=ONCE_MAX_FAILURES if once else None
        )
    except Exception as exc:
        logger.error("poller.gave_up", extra={"error": str(exc)[:300]})
        return 1
    finally:
        await poller.source.close()
        await engine.dispose()
    if poller.status.gave_way:
        print("another poller is active: nothing done")  # noqa: T201 - the command's summary
        return 0
    print(  # noqa: T201 - the command's summary
        f"read {total.read}, stored {total.stored}, duplicates {total.duplicates},"
        f" quarantined {total.quarantined}, skipped {total.skipped}"
    )
    return 0
