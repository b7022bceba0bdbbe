"""Throughput of `audit-timeline poll --once` against a raw search_after read of the same index.

    python bench/poller_throughput.py [--docs 20000] [--page-size 1000]

Starts a real Elasticsearch 7.17 (tests/es_server.py) and an embedded PostgreSQL, indexes N
documents built from the real fixtures (unique auditIDs) into a Calico-like index, then times
(1) a raw PIT + search_after read of every document (no processing) and (2) one
`audit-timeline poll --once` subprocess (process start, migrations check, normalise, store,
checkpoint). Prints docs/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elasticsearch import AsyncElasticsearch  # noqa: E402

from tests.es_server import EsServer  # noqa: E402
from tests.pg import TestPostgres  # noqa: E402
from tests.poller.es_data import (  # noqa: E402
    INDEX_PATTERN,
    TENANT,
    bulk_index,
    create_indices,
    generated,
    put_templates,
    v1_events,
)


def build_documents(count: int) -> list[tuple[str, dict[str, Any]]]:
    events = v1_events()
    docs = []
    for i in range(count):
        event = events[i % len(events)]
        source = {**event, "auditID": f"{event['auditID']}-{i}", "generated_time": generated(i)}
        docs.append((TENANT, {**source, "cluster": "bench", "tenant": "acme"}))
    return docs


async def raw_read(url: str, page_size: int) -> int:
    """Every document through PIT + search_after, as the poller pages, without processing."""
    es = AsyncElasticsearch(url, node_class="httpxasync")
    try:
        pit = (await es.open_point_in_time(index=INDEX_PATTERN, keep_alive="5m"))["id"]
        after: list[Any] | None = None
        read = 0
        while True:
            body: dict[str, Any] = {
                "size": page_size,
                "pit": {"id": pit, "keep_alive": "5m"},
                "sort": [{"generated_time": "asc"}, {"_shard_doc": "asc"}],
                "track_total_hits": False,
            }
            if after is not None:
                body["search_after"] = after
            hits = (await es.search(body=body))["hits"]["hits"]
            read += len(hits)
            if len(hits) < page_size:
                break
            after = hits[-1]["sort"]
        await es.close_point_in_time(id=pit)
        return read
    finally:
        await es.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="at-bench-") as tmp:
        os.chmod(tmp, 0o755)
        es = EsServer(Path(tmp) / "es", heap="1g")
        es.start()
        (Path(tmp) / "pg").mkdir()
        pg = TestPostgres(Path(tmp) / "pg")
        try:
            database_url = pg.create_database("bench")
            put_templates(es.url)
            create_indices(es.url)
            began = time.monotonic()
            bulk_index(es.url, build_documents(args.docs))
            index_s = time.monotonic() - began
            es_count = args.docs

            began = time.monotonic()
            read = asyncio.run(raw_read(es.url, args.page_size))
            raw_s = time.monotonic() - began
            assert read == es_count, (read, es_count)

            env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_TIMELINE_")}
            env.update(
                AUDIT_TIMELINE_DATABASE_URL=database_url,
                AUDIT_TIMELINE_DATA_DIR=str(Path(tmp) / "data"),
                AUDIT_TIMELINE_REDACTION_KEY="bench-redaction-key-0123456789abcdef",
                AUDIT_TIMELINE_ES_URL=es.url,
                AUDIT_TIMELINE_ES_PAGE_SIZE=str(args.page_size),
                AUDIT_TIMELINE_LOG_LEVEL="WARNING",
            )
            cli = str(Path(sys.executable).parent / "audit-timeline")
            began = time.monotonic()
            done = subprocess.run(
                [cli, "poll", "--once"], env=env, cwd=tmp, capture_output=True, text=True
            )
            poll_s = time.monotonic() - began
            if done.returncode != 0:
                print(done.stdout, done.stderr, file=sys.stderr)  # noqa: T201
                return 1
        finally:
            pg.close()
            es.stop()
    raw_rate = es_count / raw_s
    poll_rate = es_count / poll_s
    report = [
        f"documents: {es_count} (indexed in {index_s:.1f}s), page size {args.page_size}",
        f"raw PIT+search_after read: {raw_s:.2f}s = {raw_rate:,.0f} docs/s",
        f"audit-timeline poll --once: {poll_s:.2f}s = {poll_rate:,.0f} docs/s"
        f" ({done.stdout.strip()})",
        f"ratio poll/raw: {poll_rate / raw_rate:.2f}",
    ]
    print("\n".join(report))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
