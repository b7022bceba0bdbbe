"""`python -m app.demo_elasticsearch`: fill an Elasticsearch with sample audit documents shaped
as Calico Enterprise/Cloud indexes them, so the poller has something to read (docker-compose's
`es-loader`). Demo only: never points at a real Calico Elasticsearch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from app.demo import generate_events
from app.settings import validate_cluster_name

# Calico's mapping keeps the bodies without indexing them; the time fields are dates.
_NOT_INDEXED = {"type": "object", "enabled": False}
MAPPINGS: dict[str, Any] = {
    "properties": {
        "requestObject": _NOT_INDEXED,
        "responseObject": _NOT_INDEXED,
        "requestReceivedTimestamp": {"type": "date"},
        "stageTimestamp": {"type": "date"},
        "generated_time": {"type": "date"},
        "cluster": {"type": "keyword"},
        "auditID": {"type": "keyword"},
    }
}


def index_name(cluster: str, day: datetime) -> str:
    """Calico's rollover index name, from which the poller takes the cluster name."""
    return f"tigera_secure_ee_audit_kube.{cluster}.fluentd-{day:%Y%m%d}-000001"


def wait_for(client: httpx.Client, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get("/_cluster/health", params={"wait_for_status": "yellow"}).is_success:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"es-loader: Elasticsearch at {client.base_url} did not come up")
        time.sleep(2)


def load(url: str, *, cluster: str, count: int, wait_seconds: float = 0.0) -> tuple[str, int]:
    """Index count generated events (ids are their auditIDs: a second run adds nothing)."""
    now = datetime.now(UTC)
    index = index_name(cluster, now)
    with httpx.Client(base_url=url, timeout=60) as client:
        if wait_seconds:
            wait_for(client, timeout=wait_seconds)
        created = client.put(f"/{index}", json={"mappings": MAPPINGS})
        if not created.is_success and "resource_already_exists" not in created.text:
            created.raise_for_status()
        lines: list[str] = []
        for event in generate_events(count, end=now):
            document = {**event, "cluster": cluster, "generated_time": event["stageTimestamp"]}
            lines += [json.dumps({"index": {"_id": event["auditID"]}}), json.dumps(document)]
        result = client.post(
            f"/{index}/_bulk",
            params={"refresh": "true"},
            content="\n".join(lines) + "\n",
            headers={"Content-Type": "application/x-ndjson"},
        )
        result.raise_for_status()
        if result.json()["errors"]:
            raise SystemExit(f"es-loader: Elasticsearch rejected documents: {result.text[:500]}")
    return index, count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.demo_elasticsearch", description=__doc__)
    parser.add_argument("--url", default="http://elasticsearch:9200")
    parser.add_argument("--cluster", type=validate_cluster_name, default="demo")
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--wait", type=float, default=180.0, help="seconds to wait for ES")
    args = parser.parse_args(argv)
    index, count = load(args.url, cluster=args.cluster, count=args.count, wait_seconds=args.wait)
    print(f"es-loader: {count} sample audit documents in {index}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
