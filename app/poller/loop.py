"""The poll cycle: fetch a page, store its events and advance the checkpoint in one transaction.

run_once() reads every stream until caught up; run_forever() adds leadership (one active
poller among replicas, a PostgreSQL advisory lock), the poll interval and exponential back-off.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit import partitions, queries
from app.audit.intake import PreparedBatch, RawItem, prepare_batch
from app.audit.queries import StoreResult
from app.audit.redact import Redactor
from app.db import DATABASE_DOWN_ERRORS
from app.metrics import Metrics
from app.poller.documents import ClusterFrom, read_hit
from app.poller.source import STREAMS, EsSource, EsUnavailable, Page, Snapshot, Stream
from app.settings import Settings

logger = logging.getLogger(__name__)

SOURCE = "elasticsearch"
# Errors that mean "PostgreSQL is not there right now".
DATABASE_ERRORS = (*DATABASE_DOWN_ERRORS, OSError)


@dataclass(frozen=True)
class CycleResult:
    """What one or more cycles did with the documents they read."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    skipped: int = 0

    def __add__(self, other: CycleResult) -> CycleResult:
        return CycleResult(
            *(a + b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True))
        )


@dataclass
class PollerStatus:
    """The poller's state for /readyz and logs (one instance per process)."""

    state: str = "starting"  # starting, standby, polling, idle, backoff, stopped, failed
    is_active: bool = False
    last_success_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    newest_event_at: datetime | None = None
    totals: CycleResult = field(default_factory=CycleResult)
    # A one-shot run found another poller active and left the work to it.
    gave_way: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("last_success_at", "newest_event_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


def backoff_delay(failures: int, *, maximum: float, base: float = 1.0) -> float:
    """Seconds to wait after `failures` consecutive failures: doubling, capped, +-20% jitter."""
    delay = min(maximum, base * 2 ** max(0, failures - 1))
    return float(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not crypto


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a poller name."""
    digest = hashlib.sha256(f"audit-timeline poller {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def checkpoint_key(index: str, stream: Stream) -> str:
    """The poll_checkpoint key of one stream of one index pattern."""
    return f"es:{index}:{stream.name}"


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def error_kind(exc: BaseException) -> str:
    """Which dependency an error blames: elasticsearch, database or other."""
    if isinstance(exc, EsUnavailable):
        return "elasticsearch"
    if isinstance(exc, DATABASE_ERRORS):
        return "database"
    return "other"


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class Poller:
    """Polls one Elasticsearch index pattern into the store."""

    def __init__(
        self,
        *,
        source: EsSource,
        engine: AsyncEngine,
        redactor: Redactor,
        settings: Settings,
        metrics: Metrics | None = None,
        status: PollerStatus | None = None,
    ) -> None:
        self.source = source
        self.engine = engine
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False
        )
        self.redactor = redactor
        self.metrics = metrics or Metrics()
        self.status = status or PollerStatus()
        self.index = settings.es_index
        self.page_size = settings.es_page_size
        self.overlap_ms = int(settings.es_overlap.total_seconds() * 1000)
        self.overlap_every = settings.es_overlap_every
        self.clock: Callable[[], float] = time.monotonic
        self.last_overlap_at: float | None = None
        self.interval = settings.es_poll_interval.total_seconds()
        self.backoff_max = settings.es_backoff_max.total_seconds()
        self.cluster_from: ClusterFrom = settings.es_cluster_from
        self.default_cluster = settings.es_cluster
        self.lock_key = lock_key(settings.es_index)

    async def run_once(self, stop: asyncio.Event | None = None) -> CycleResult:
        """Read every stream from its checkpoint until caught up. The first cycle, and one every
        overlap_every poll intervals, start earlier by the overlap plus the time since the last
        such cycle: a document indexed up to `overlap` late is always read."""
        total = CycleResult()
        now = self.clock()
        since_last = None if self.last_overlap_at is None else now - self.last_overlap_at
        is_overlap_cycle = since_last is None or since_last >= self.overlap_every * self.interval
        overlap_ms = self.overlap_ms + int((since_last or 0) * 1000) if is_overlap_cycle else 0
        async with self.sessionmaker() as session:
            keys = [checkpoint_key(self.index, stream) for stream in STREAMS]
            checkpoints = await queries.get_poll_checkpoints(session, keys=keys)
        async with self.source.snapshot() as snap:
            for stream in STREAMS:
                stored = checkpoints.get(checkpoint_key(self.index, stream))
                cursor = None if stored is None else to_ms(stored.cursor_at)
                total += await self._poll_stream(snap, stream, cursor, overlap_ms, stop)
                if stop is not None and stop.is_set():
                    break
        self.status.last_success_at = datetime.now(UTC)
        self.status.totals += total
        if is_overlap_cycle:
            self.last_overlap_at = now  # only a cycle that finished counts
        return total

    async def _poll_stream(
        self,
        snap: Snapshot,
        stream: Stream,
        cursor_ms: int | None,
        overlap_ms: int,
        stop: asyncio.Event | None,
    ) -> CycleResult:
        # Without overlap the cycle still starts at the checkpoint's own millisecond (gte):
        # documents sharing it are read again, never skipped.
        since = None if cursor_ms is None else cursor_ms - overlap_ms
        total = CycleResult()
        after: list[Any] | None = None
        while True:
            page = await self.source.fetch(
                snap, stream, since_ms=since, after=after, size=self.page_size
            )
            if not page.hits:
                break
            total += await self._store_page(stream, page)
            after = page.search_after
            # Finish the page in hand, then honour SIGTERM; its checkpoint is committed.
            if len(page.hits) < self.page_size or (stop is not None and stop.is_set()):
                break
        if total.read:
            logger.info("poller.stream_done", extra={"stream": stream.name, **asdict(total)})
        return total

    def _prepare(self, page: Page) -> tuple[dict[str, PreparedBatch], int]:
        """Normalise a page per cluster; also how many hits were taken (ee documents are not)."""
        by_cluster: dict[str, list[RawItem]] = defaultdict(list)
        for hit in page.hits:
            doc = read_hit(
                hit, cluster_from=self.cluster_from, default_cluster=self.default_cluster
            )
            if doc is not None:
                by_cluster[doc.cluster].append(doc.item)
        prepared = {
            cluster: prepare_batch(items, cluster=cluster, source=SOURCE, redactor=self.redactor)
            for cluster, items in by_cluster.items()
        }
        return prepared, sum(len(items) for items in by_cluster.values())

    async def _store_page(self, stream: Stream, page: Page) -> CycleResult:
        # CPU work: off the event loop, so `serve` keeps answering while the poller runs.
        prepared, taken = await anyio.to_thread.run_sync(self._prepare, page)
        times = [row["stage_at"] for batch in prepared.values() for row in batch.events]
        newest = max(times, default=None)
        result = StoreResult(0, 0, 0)
        # One transaction stores every cluster's batch: their weeks' partitions first.
        await partitions.prepare_for(self.engine, times)
        async with self.sessionmaker.begin() as session:
            for cluster, batch in prepared.items():
                result += await queries.store_batch(
                    session,
                    events=batch.events,
                    quarantined=batch.quarantined,
                    cluster=cluster,
                    source=SOURCE,
                )
            if page.last_time_ms is not None:
                await queries.save_poll_checkpoint(
                    session,
                    key=checkpoint_key(self.index, stream),
                    cursor_at=from_ms(page.last_time_ms),
                    newest_event_at=newest,
                )
        skipped = len(page.hits) - taken
        outcome = CycleResult(
            len(page.hits), result.stored, result.duplicates, result.quarantined, skipped
        )
        self._count(outcome, newest)
        return outcome

    def _count(self, outcome: CycleResult, newest: datetime | None) -> None:
        docs = self.metrics.poller_documents
        docs.labels("read").inc(outcome.read)
        docs.labels("stored").inc(outcome.stored)
        docs.labels("duplicate").inc(outcome.duplicates)
        docs.labels("quarantined").inc(outcome.quarantined)
        docs.labels("skipped").inc(outcome.skipped)
        self.metrics.count_store(
            SOURCE,
            stored=outcome.stored,
            duplicates=outcome.duplicates,
            quarantined=outcome.quarantined,
        )
        if newest is not None and (
            self.status.newest_event_at is None or newest > self.status.newest_event_at
        ):
            self.status.newest_event_at = newest
            self.metrics.poller_newest_event_at = newest

    async def run_forever(
        self, stop: asyncio.Event, *, once: bool = False, max_failures: int | None = None
    ) -> CycleResult:
        """Poll until stop is set (or one successful pass with once), surviving outages.

        Waits in standby while another replica holds the lock. Any failure releases the lock,
        backs off and starts again from the committed checkpoints. With max_failures, the
        last error is raised after that many consecutive failures.
        """
        total = CycleResult()
        while not stop.is_set():
            try:
                async with self.engine.connect() as conn:
                    lock = AsyncSession(bind=conn)
                    if not await self._wait_for_lock(lock, stop, once=once):
                        break
                    try:
                        total += await self._poll_while_leader(lock, stop, once=once)
                    finally:
                        self._set_active(False)
                        with suppress(Exception):
                            await queries.unlock_poller(lock, key=self.lock_key)
                            await lock.commit()
                if once:
                    break
            except Exception as exc:
                self.status.consecutive_failures += 1
                failures = self.status.consecutive_failures
                if max_failures is not None and failures >= max_failures:
                    self.status.state = "failed"
                    raise
                await self._back_off(exc, stop)
        if self.status.state != "failed":
            self.status.state = "stopped"
        return total

    async def _wait_for_lock(self, lock: AsyncSession, stop: asyncio.Event, *, once: bool) -> bool:
        """Wait to become the one active poller; with once, give up if another one is."""
        announced = False
        while not stop.is_set():
            is_leader = await queries.try_lock_poller(lock, key=self.lock_key)
            await lock.commit()  # the session-level lock outlives the transaction
            if is_leader:
                self._set_active(True)
                logger.info("poller.lock_acquired", extra={"index": self.index})
                return True
            if once:
                # A one-shot run next to an active poller has nothing to do: that one polls.
                logger.warning("poller.another_is_active", extra={"index": self.index})
                self.status.gave_way = True
                return False
            if not announced:
                logger.info("poller.standby", extra={"index": self.index})
                announced = True
            self.status.state = "standby"
            await _sleep_unless(stop, self.interval)
        return False

    async def _poll_while_leader(
        self, lock: AsyncSession, stop: asyncio.Event, *, once: bool
    ) -> CycleResult:
        total = CycleResult()
        while not stop.is_set():
            # The lock lives on this connection: if it died, another replica may lead now.
            await queries.ping_database(lock)
            await lock.commit()
            self.status.state = "polling"
            total += await self.run_once(stop)
            self.status.consecutive_failures = 0
            self.status.last_error = None
            if once:
                break
            self.status.state = "idle"
            await _sleep_unless(stop, self.interval)
        return total

    def _set_active(self, is_active: bool) -> None:
        self.status.is_active = is_active
        self.metrics.poller_active.set(1 if is_active else 0)

    async def _back_off(self, exc: Exception, stop: asyncio.Event) -> None:
        kind = error_kind(exc)
        delay = backoff_delay(self.status.consecutive_failures, maximum=self.backoff_max)
        self.metrics.poller_errors.labels(kind).inc()
        self.status.state = "backoff"
        self.status.last_error = f"{kind}: {exc}"[:300]
        extra = {
            "kind": kind,
            "error": str(exc)[:300],
            "failures": self.status.consecutive_failures,
            "retry_in_s": round(delay, 2),
        }
        if kind == "other":
            logger.exception("poller.cycle_failed", extra=extra)
        elif kind == "elasticsearch":
            logger.warning("poller.elasticsearch_unavailable", extra=extra)
        else:
            logger.warning("poller.database_unavailable", extra=extra)
        await _sleep_unless(stop, delay)


def make_poller(
    settings: Settings,
    engine: AsyncEngine,
    redactor: Redactor,
    *,
    metrics: Metrics | None = None,
    status: PollerStatus | None = None,
) -> Poller:
    """A Poller for these settings (its Elasticsearch client is created, not yet used)."""
    return Poller(
        source=EsSource.from_settings(settings),
        engine=engine,
        redactor=redactor,
        settings=settings,
        metrics=metrics,
        status=status,
    )
