"""Fast tests (no Elasticsearch): index names, cluster choice, Calico fields, media types,
queries and back-off."""

from __future__ import annotations

import json

import pytest

from app.poller.compat import compat_headers, compat_media_type, parse_major
from app.poller.documents import parse_index_name, read_hit, resolve_cluster, split_calico_fields
from app.poller.loop import backoff_delay, lock_key
from app.poller.source import STREAMS, build_query, build_sort, classify_failures

VENDOR_JSON = "application/vnd.elasticsearch+json; compatible-with=9"


@pytest.mark.parametrize(
    ("index", "generation", "tenant", "cluster"),
    [
        ("tigera_secure_ee_audit_kube.cluster.20240131", "daily", None, "cluster"),
        ("tigera_secure_ee_audit_kube.prod.fluentd-20240131-000007", "rollover", None, "prod"),
        (
            "tigera_secure_ee_audit_kube.acme.prod.fluentd-20240131-000001",
            "rollover",
            "acme",
            "prod",
        ),
        ("tigera_secure_ee_audit_kube.acme.prod.20240131", "daily", "acme", "prod"),
        ("calico_auditlogs.standard-000001", "shared", None, None),
        ("tigera_secure_ee_audit_kube.prod.reindexed", "unknown", None, None),
        ("my-audit-2024", "unknown", None, None),
    ],
)
def test_index_names_of_every_generation(
    index: str, generation: str, tenant: str | None, cluster: str | None
) -> None:
    parsed = parse_index_name(index)
    assert (parsed.generation, parsed.tenant, parsed.cluster) == (generation, tenant, cluster)


def test_cluster_choice_follows_the_setting() -> None:
    index = parse_index_name("tigera_secure_ee_audit_kube.from-index.20240101")
    assert resolve_cluster("from-doc", index, cluster_from="auto", default="d") == "from-doc"
    assert resolve_cluster(None, index, cluster_from="auto", default="d") == "from-index"
    assert resolve_cluster("bad name!", index, cluster_from="auto", default="d") == "from-index"
    assert resolve_cluster("from-doc", index, cluster_from="index", default="d") == "from-index"
    assert resolve_cluster(None, index, cluster_from="document", default="d") == "d"
    assert resolve_cluster("from-doc", index, cluster_from="fixed", default="d") == "d"
    shared = parse_index_name("calico_auditlogs.x")
    assert resolve_cluster(None, shared, cluster_from="auto", default="cluster") == "cluster"


def test_timestamp_is_calicos_only_on_v1_events() -> None:
    v1 = {"apiVersion": "audit.k8s.io/v1", "timestamp": "t", "name": None, "cluster": "c"}
    event, added = split_calico_fields(v1)
    assert event == {"apiVersion": "audit.k8s.io/v1"}
    assert added == {"timestamp": "t", "name": None, "cluster": "c"}
    for version in ("audit.k8s.io/v1beta1", None):
        old = {"apiVersion": version, "timestamp": "t", "generated_time": "g"}
        event, added = split_calico_fields(old)
        assert event["timestamp"] == "t"
        assert added == {"generated_time": "g"}


def test_read_hit_keeps_index_id_and_added_fields_and_skips_ee() -> None:
    source = {"auditID": "a", "stage": "ResponseComplete", "cluster": "c1", "name": "n"}
    hit = {"_index": "calico_auditlogs.x", "_id": "ID1", "_source": source}
    doc = read_hit(hit, cluster_from="auto", default_cluster="cluster")
    assert doc is not None
    assert doc.cluster == "c1"
    assert doc.item.origin == "es:calico_auditlogs.x/ID1"
    assert doc.item.value == {"auditID": "a", "stage": "ResponseComplete"}
    assert doc.item.meta == {
        "es": {"index": "calico_auditlogs.x", "id": "ID1"},
        "calico": {"name": "n", "cluster": "c1"},
    }
    assert json.loads(doc.item.raw) == source  # quarantine keeps the whole document
    ee = {**hit, "_source": {**source, "audit_type": "ee"}}
    assert read_hit(ee, cluster_from="auto", default_cluster="cluster") is None


def test_unstorable_document_becomes_an_error_item() -> None:
    hit = {"_index": "i", "_id": "x", "_source": {"auditID": "a\x00b"}}
    doc = read_hit(hit, cluster_from="auto", default_cluster="cluster")
    assert doc is not None
    assert doc.item.error is not None
    assert "NUL" in doc.item.error


@pytest.mark.parametrize(
    ("major", "expected"),
    [
        (None, "application/json"),
        (7, "application/json"),
        (8, "application/vnd.elasticsearch+json; compatible-with=8"),
        (9, VENDOR_JSON),
    ],
)
def test_media_type_for_server_major(major: int | None, expected: str) -> None:
    assert compat_media_type(VENDOR_JSON, major) == expected


def test_headers_rewritten_for_8x_keep_other_headers() -> None:
    headers = {
        "Accept": VENDOR_JSON,
        "Content-Type": "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
        "Authorization": "ApiKey abc",
    }
    result = compat_headers(headers, 8)
    assert result["accept"].endswith("compatible-with=8")
    assert result["content-type"] == "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
    assert result["authorization"] == "ApiKey abc"
    assert headers["Accept"] == VENDOR_JSON  # the caller's mapping is not changed
    assert parse_major("8.15.0") == 8
    assert parse_major("weird") is None


def test_streams_partition_documents_by_their_time_field() -> None:
    names = [s.time_field for s in STREAMS]
    assert names == ["generated_time", "stageTimestamp", "timestamp"]
    query = build_query(STREAMS[1], since_ms=1000)["bool"]
    assert {"exists": {"field": "generated_time"}} in query["must_not"]
    assert {"term": {"audit_type": "ee"}} in query["must_not"]
    assert {"range": {"stageTimestamp": {"gte": 1000, "format": "epoch_millis"}}} in query["filter"]
    assert build_sort(STREAMS[0], use_pit=True)[1] == {"_shard_doc": "asc"}
    assert "auditID" in build_sort(STREAMS[0], use_pit=False)[1]


def test_shard_failures_split_into_incompatible_and_to_check() -> None:
    failures = [
        {"index": "a", "reason": {"type": "query_shard_exception"}},
        {"index": "b", "reason": {"type": "no_shard_available_action_exception"}},
        {"reason": {"type": "x", "index": "c"}},
    ]
    assert classify_failures(failures) == ({"a"}, {"b", "c"})


def test_backoff_doubles_and_is_capped() -> None:
    assert 0.8 <= backoff_delay(1, maximum=60) <= 1.2
    assert 6.4 <= backoff_delay(4, maximum=60) <= 9.6
    assert backoff_delay(30, maximum=60) <= 72
    assert lock_key("x") == lock_key("x") != lock_key("y")
    assert -(2**63) <= lock_key("x") < 2**63
