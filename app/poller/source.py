"""EsSource: Calico audit documents from Elasticsearch in a stable order, one page at a time.

Wraps AsyncElasticsearch: a point-in-time (PIT) per cycle where the server offers one, and
`search_after` on (time field, tiebreaker). Knows nothing of PostgreSQL or of normalisation.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from app.poller.compat import CompatTransport, parse_major
from app.settings import Settings

logger = logging.getLogger(__name__)

PIT_KEEP_ALIVE = "5m"
# Shard failures that say "this index cannot run this query" (e.g. a time field mapped as
# keyword in an odd index): retrying will not help, so the index is skipped and reported.
INCOMPATIBLE_FAILURES = frozenset(
    {"query_shard_exception", "illegal_argument_exception", "search_parse_exception"}
)
_FILTER_PATH = "hits.hits._index,hits.hits._id,hits.hits._source,hits.hits.sort,pit_id,_shards"


class EsUnavailable(Exception):
    """Elasticsearch could not answer reliably (down, slow, failed shards); retry later."""


@dataclass(frozen=True)
class Stream:
    """Documents ordered by one time field; a document belongs to the first stream that fits.

    `generated_time` (ingestion time, newer Calico pipelines) comes first because a document
    that arrives late still gets a fresh value there; older documents fall back to the
    event's own times.
    """

    name: str
    time_field: str
    absent: tuple[str, ...] = ()


STREAMS = (
    Stream("generated_time", "generated_time"),
    Stream("stageTimestamp", "stageTimestamp", absent=("generated_time",)),
    Stream("timestamp", "timestamp", absent=("generated_time", "stageTimestamp")),
)


@dataclass(frozen=True)
class Page:
    """One page of hits, in sort order, and where the next page starts."""

    hits: list[dict[str, Any]]
    search_after: list[Any] | None
    last_time_ms: int | None


@dataclass
class Snapshot:
    """The view one cycle reads from: a PIT id (refreshed by every page), or None."""

    pit_id: str | None


def build_query(stream: Stream, *, since_ms: int | None) -> dict[str, Any]:
    """Documents of this stream (Kubernetes audit only) with time >= since_ms."""
    filters: list[dict[str, Any]] = [{"exists": {"field": stream.time_field}}]
    if since_ms is not None:
        filters.append({"range": {stream.time_field: {"gte": since_ms, "format": "epoch_millis"}}})
    # Shared indices hold kube and ee documents; `term` works whether audit_type is keyword or
    # text ("ee" analyses to itself), and documents without audit_type are kube documents.
    must_not: list[dict[str, Any]] = [{"term": {"audit_type": "ee"}}]
    must_not += [{"exists": {"field": field}} for field in stream.absent]
    return {"bool": {"filter": filters, "must_not": must_not}}


def build_sort(stream: Stream, *, use_pit: bool) -> list[dict[str, Any]]:
    """Stable order: time (date and date_nanos compared in milliseconds), then a tiebreaker."""
    time_sort = {
        stream.time_field: {"order": "asc", "unmapped_type": "date", "numeric_type": "date"}
    }
    if use_pit:
        return [time_sort, {"_shard_doc": "asc"}]
    # Without a PIT there is no exact tiebreaker; documents with equal time and auditID at a
    # page boundary may be skipped, so the overlap window re-reads them next cycle.
    return [time_sort, {"auditID": {"order": "asc", "unmapped_type": "keyword"}}]


def classify_failures(failures: Sequence[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """Split shard failures into (indices that cannot run the query, indices to check)."""
    incompatible: set[str] = set()
    other: set[str] = set()
    for failure in failures:
        index = str(failure.get("index") or (failure.get("reason") or {}).get("index") or "")
        kind = (failure.get("reason") or {}).get("type")
        (incompatible if kind in INCOMPATIBLE_FAILURES else other).add(index)
    return incompatible, other


def make_client(settings: Settings) -> AsyncElasticsearch:
    """The Elasticsearch client for these settings (httpx, media types adapted to the server)."""
    options: dict[str, Any] = {
        "node_class": "httpxasync",
        "transport_class": CompatTransport,
        "request_timeout": settings.es_request_timeout.total_seconds(),
        "max_retries": 1,
        "retry_on_timeout": True,
    }
    if settings.es_api_key is not None:
        options["api_key"] = settings.es_api_key.get_secret_value()
    elif settings.es_username is not None:
        password = settings.es_password.get_secret_value() if settings.es_password else ""
        options["basic_auth"] = (settings.es_username, password)
    if settings.es_ca_certs is not None:
        options["ca_certs"] = str(settings.es_ca_certs)
    if not settings.es_verify_certs:
        options["verify_certs"] = False
        options["ssl_show_warn"] = False
    return AsyncElasticsearch(settings.es_url, **options)


class EsSource:
    """Reads pages of audit documents from the configured index pattern."""

    def __init__(self, client: AsyncElasticsearch, *, index: str) -> None:
        self.client = client
        self.index = index
        self.server_version: str | None = None
        self.use_pit = True

    @classmethod
    def from_settings(cls, settings: Settings) -> EsSource:
        return cls(make_client(settings), index=settings.es_index)

    async def close(self) -> None:
        await self.client.close()

    async def connect(self) -> None:
        """Learn the server version (GET /) so requests use media types it accepts."""
        try:
            info = await self.client.info()
        except (ApiError, TransportError) as exc:
            raise EsUnavailable(_describe(exc)) from exc
        version = str(info["version"]["number"])
        transport = self.client.transport
        if isinstance(transport, CompatTransport):
            transport.server_major = parse_major(version)
        if version != self.server_version:
            logger.info("poller.es_connected", extra={"version": version})
        self.server_version = version

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        """A consistent view for one cycle: a PIT when available, closed afterwards."""
        if self.server_version is None:
            await self.connect()
        snap = Snapshot(pit_id=await self._open_pit() if self.use_pit else None)
        try:
            yield snap
        finally:
            if snap.pit_id is not None:
                with suppress(ApiError, TransportError):
                    await self.client.close_point_in_time(id=snap.pit_id)

    async def _open_pit(self) -> str | None:
        try:
            response = await self.client.open_point_in_time(
                index=self.index,
                keep_alive=PIT_KEEP_ALIVE,
                ignore_unavailable=True,
                expand_wildcards="open",
            )
        except ApiError as exc:
            if exc.meta.status in (400, 403, 404, 405):
                # Too old a server, or a key without the privilege: page without a PIT.
                logger.warning("poller.pit_unavailable", extra={"error": _describe(exc)})
                self.use_pit = False
                return None
            raise EsUnavailable(_describe(exc)) from exc
        except TransportError as exc:
            raise EsUnavailable(_describe(exc)) from exc
        return str(response["id"])

    async def fetch(
        self,
        snap: Snapshot,
        stream: Stream,
        *,
        since_ms: int | None,
        after: list[Any] | None,
        size: int,
    ) -> Page:
        """The next page of stream after `after` (sort values), times >= since_ms."""
        body: dict[str, Any] = {
            "size": size,
            "query": build_query(stream, since_ms=since_ms),
            "sort": build_sort(stream, use_pit=snap.pit_id is not None),
            "track_total_hits": False,
        }
        if after is not None:
            body["search_after"] = after
        try:
            if snap.pit_id is not None:
                body["pit"] = {"id": snap.pit_id, "keep_alive": PIT_KEEP_ALIVE}
                response = await self.client.search(body=body, filter_path=_FILTER_PATH)
            else:
                response = await self.client.search(
                    index=self.index,
                    body=body,
                    filter_path=_FILTER_PATH,
                    ignore_unavailable=True,
                    expand_wildcards="open",
                )
        except (ApiError, TransportError) as exc:
            raise EsUnavailable(_describe(exc)) from exc
        result = response.body
        if result.get("pit_id"):
            snap.pit_id = result["pit_id"]
        await self._check_failures(result.get("_shards", {}).get("failures", []))
        hits: list[dict[str, Any]] = result.get("hits", {}).get("hits", [])
        if not hits:
            return Page([], None, None)
        last_sort = hits[-1].get("sort")
        last_time = last_sort[0] if last_sort and isinstance(last_sort[0], int) else None
        return Page(hits, last_sort, last_time)

    async def _check_failures(self, failures: Sequence[dict[str, Any]]) -> None:
        """Accept failures of deleted or incompatible indices; raise for anything else."""
        if not failures:
            return
        incompatible, other = classify_failures(failures)
        for index in sorted(other):
            try:
                exists = bool(index) and bool(await self.client.indices.exists(index=index))
            except (ApiError, TransportError) as exc:
                raise EsUnavailable(_describe(exc)) from exc
            if exists:
                raise EsUnavailable(f"shard failures on index {index}: {failures[0]}")
            # Deleted (retention) while we paged: its documents are gone, nothing to wait for.
            logger.info("poller.index_deleted", extra={"index": index})
        for index in sorted(incompatible):
            logger.error("poller.index_incompatible", extra={"index": index})


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"HTTP {exc.meta.status}: {exc.message}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
