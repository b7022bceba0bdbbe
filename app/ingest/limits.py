"""Per-sender ingest limits: token buckets of events and bytes per cluster (one per ingest token).

A sender over its rate gets 429 with Retry-After; the others keep their own buckets, so one
misbehaving cluster cannot starve the rest. Buckets live in this process (per replica).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """rate tokens a second, holding at most burst. rate 0: unlimited."""

    rate: float
    burst: float
    tokens: float = math.inf
    updated: float = 0.0

    def take(self, cost: float, now: float) -> float:
        """Take cost tokens and return 0, or take nothing and return the seconds until cost
        would fit. A cost above burst is taken from a full bucket (no batch is refused for ever)."""
        if self.rate <= 0:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        cost = min(cost, self.burst)
        if cost <= self.tokens:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


@dataclass
class IngestLimiter:
    """Buckets of events and of bytes for each cluster."""

    events_per_second: float
    events_burst: float
    bytes_per_second: float
    bytes_burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)

    def _bucket(self, cluster: str, unit: str) -> TokenBucket:
        key = (cluster, unit)
        if key not in self._buckets:
            rate, burst = (
                (self.events_per_second, self.events_burst)
                if unit == "events"
                else (self.bytes_per_second, self.bytes_burst)
            )
            self._buckets[key] = TokenBucket(rate=rate, burst=burst, tokens=burst)
        return self._buckets[key]

    def take_bytes(self, cluster: str, size: int) -> float:
        """0 when the cluster may send size more bytes now, else seconds to wait."""
        bucket = self._bucket(cluster, "bytes")
        return bucket.take(size, self.clock()) if bucket.rate > 0 else 0.0

    def take_events(self, cluster: str, count: int) -> float:
        """0 when the cluster may store count more items now, else seconds to wait."""
        bucket = self._bucket(cluster, "events")
        return bucket.take(count, self.clock()) if bucket.rate > 0 else 0.0
