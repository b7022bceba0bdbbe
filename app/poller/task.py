"""The poller as a background task of the web app (`serve` with ES_URL set).

Started and stopped by the app's lifespan; its status is what /readyz reports.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.poller.loop import PollerStatus, make_poller
from app.settings import Settings

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 15.0


class PollerTask:
    """A running Poller.run_forever() with its stop switch."""

    def __init__(self, app: FastAPI, settings: Settings, engine: AsyncEngine) -> None:
        self.status = PollerStatus()
        self.poller = make_poller(
            settings,
            engine,
            app.state.redactor,
            metrics=app.state.metrics,
            status=self.status,
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="es-poller")

    async def _run(self) -> None:
        try:
            await self.poller.run_forever(self._stop)
        except Exception:
            # run_forever survives outages; reaching here is a bug worth a loud log.
            self.status.state = "failed"
            logger.exception("poller.crashed")

    async def stop(self) -> None:
        """Finish the page in hand and stop (cancel after a timeout); close the client."""
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        finally:
            await self.poller.source.close()


def start_poller(app: FastAPI, settings: Settings, engine: AsyncEngine) -> PollerTask:
    """Start polling in the background; the task is kept on app.state.poller."""
    task = PollerTask(app, settings, engine)
    app.state.poller = task
    return task
