"""Builders for the poller tests: Calico's index templates and audit documents in Elasticsearch.

Documents are the real fixture events (../shared/fixtures/real) spread over indices of every
naming generation Calico has used, with the fields Calico's pipelines add.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import fixture_paths

KUBE_PATTERN = "tigera_secure_ee_audit_kube.*"
INDEX_PATTERN = "tigera_secure_ee_audit_kube.*,calico_auditlogs.*"
DAILY = "tigera_secure_ee_audit_kube.alpha.20240101"
ROLLOVER_ALIAS = "tigera_secure_ee_audit_kube.beta."
ROLLOVER_1 = "tigera_secure_ee_audit_kube.beta.fluentd-20240102-000001"
ROLLOVER_2 = "tigera_secure_ee_audit_kube.beta.fluentd-20240103-000002"
TENANT = "tigera_secure_ee_audit_kube.acme.gamma.fluentd-20240104-000001"
SHARED = "calico_auditlogs.standard-000001"
GENERATED_BASE = datetime(2024, 5, 1, tzinfo=UTC)

_KW = {"type": "keyword"}
_DATE = {"type": "date"}
_OFF = {"type": "object", "enabled": False}
_USER = {"properties": {"username": _KW, "uid": _KW, "groups": _KW, "extra": _OFF}}

# Calico's mapping: mostly keyword; stage, sourceIPs, userAgent text; annotations flattened;
# bodies and user.extra stored, not indexed; the time fields are dates.
CALICO_MAPPING: dict[str, Any] = {
    "properties": {
        "apiVersion": _KW,
        "kind": _KW,
        "level": _KW,
        "auditID": _KW,
        "stage": {"type": "text"},
        "requestURI": _KW,
        "verb": _KW,
        "user": _USER,
        "impersonatedUser": _USER,
        "sourceIPs": {"type": "text"},
        "userAgent": {"type": "text"},
        "objectRef": {
            "properties": dict.fromkeys(
                ("resource", "namespace", "name", "uid", "apiGroup", "apiVersion"), _KW
            )
            | dict.fromkeys(("resourceVersion", "subresource"), _KW)
        },
        "responseStatus": {
            "properties": {
                "metadata": _OFF,
                "status": _KW,
                "message": _KW,
                "reason": _KW,
                "code": {"type": "integer"},
                "details": _OFF,
            }
        },
        "requestObject": _OFF,
        "responseObject": {
            "properties": {"metadata": _OFF, "spec": _OFF, "status": _OFF, "data": _OFF},
        },
        "requestReceivedTimestamp": _DATE,
        "stageTimestamp": _DATE,
        "timestamp": _DATE,
        "generated_time": _DATE,
        "annotations": {"type": "flattened"},
        "name": _KW,
        "cluster": _KW,
        "tenant": _KW,
        "audit_type": _KW,
    }
}

# The early daily generation: no generated_time/cluster, stage keyword, annotations an object.
LEGACY_MAPPING: dict[str, Any] = {
    "properties": {
        **{
            k: v
            for k, v in CALICO_MAPPING["properties"].items()
            if k not in ("generated_time", "cluster", "tenant", "audit_type", "annotations")
        },
        "stage": _KW,
        "annotations": {"type": "object"},
    }
}
_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"}


def es_call(url: str, method: str, path: str, body: Any = None, *, ndjson: bool = False) -> Any:
    """One request to Elasticsearch; the decoded JSON answer (raises on HTTP errors)."""
    if ndjson:
        data = "".join(json.dumps(line) + "\n" for line in body).encode()
        ctype = "application/x-ndjson"
    else:
        data = json.dumps(body).encode() if body is not None else None
        ctype = "application/json"
    req = urllib.request.Request(
        url + path, data=data, method=method, headers={"Content-Type": ctype}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"{method} {path} -> {err.code}: {err.read()[:2000]!r}") from err


def put_templates(url: str) -> None:
    """Calico-like composable templates (index.lifecycle.* left out: no ILM in the test node)."""
    es_call(
        url,
        "PUT",
        "/_index_template/calico-audit",
        {
            "index_patterns": [KUBE_PATTERN, "calico_auditlogs.*"],
            "priority": 100,
            "template": {"settings": _SETTINGS, "mappings": CALICO_MAPPING},
        },
    )
    es_call(
        url,
        "PUT",
        "/_index_template/calico-audit-legacy",
        {
            "index_patterns": ["tigera_secure_ee_audit_kube.*.20*"],
            "priority": 200,
            "template": {"settings": _SETTINGS, "mappings": LEGACY_MAPPING},
        },
    )


def delete_indices(url: str) -> None:
    es_call(url, "DELETE", f"/{INDEX_PATTERN}?expand_wildcards=all&ignore_unavailable=true")


def create_indices(url: str) -> None:
    """Every naming generation; the tenant generation maps stageTimestamp as date_nanos."""
    es_call(url, "PUT", f"/{DAILY}")
    es_call(url, "PUT", f"/{ROLLOVER_1}", {"aliases": {ROLLOVER_ALIAS: {"is_write_index": True}}})
    es_call(
        url,
        "PUT",
        f"/{TENANT}",
        {"mappings": {"properties": {"stageTimestamp": {"type": "date_nanos"}}}},
    )
    es_call(url, "PUT", f"/{SHARED}")


def rollover(url: str) -> None:
    """Roll the beta alias over to its second index, as ILM would."""
    es_call(url, "POST", f"/{ROLLOVER_ALIAS}/_rollover/{ROLLOVER_2}")


def bulk_index(url: str, docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Index (target, source) pairs, refresh; return the _ids. Fails on any rejected doc."""
    lines: list[Any] = []
    for target, source in docs:
        lines += [{"index": {"_index": target}}, source]
    ids: list[str] = []
    for start in range(0, len(lines), 1000):
        result = es_call(url, "POST", "/_bulk", lines[start : start + 1000], ndjson=True)
        if result["errors"]:
            bad = [i for i in result["items"] if i["index"].get("error")]
            raise RuntimeError(f"bulk rejected {len(bad)} documents: {bad[:2]}")
        ids += [item["index"]["_id"] for item in result["items"]]
    es_call(url, "POST", f"/{INDEX_PATTERN}/_refresh")
    return ids


def fixture_events() -> list[dict[str, Any]]:
    """Every event of the real JSON-lines fixtures (the wrapped raw-input file left out)."""
    events = []
    for path in fixture_paths():
        if "pipeline_inputs_raw" in path.name:
            continue
        events += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return events


def generated(seq: int) -> str:
    """Calico's ingestion time of the seq-th document (10 ms apart)."""
    return (GENERATED_BASE + timedelta(milliseconds=10 * seq)).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Placed:
    """A document as indexed, and the cluster it must be stored under (None: not taken)."""

    target: str
    source: dict[str, Any]
    cluster: str | None


def calico_document(event: dict[str, Any], slot: int, seq: int) -> Placed:
    """The fixture event as Calico would have indexed it in naming generation `slot` (0-5)."""
    name = (event.get("objectRef") or {}).get("name")
    if slot == 0:  # early daily index: the Event plus `name` only
        return Placed(DAILY, {**event, "name": name}, "alpha")
    added = {"name": name, "generated_time": generated(seq)}
    if slot == 1:  # rollover through the alias, newer pipeline (cluster + generated_time)
        return Placed(ROLLOVER_ALIAS, {**event, **added, "cluster": "beta"}, "beta")
    if slot == 2:  # tenant generation; v1 documents also get Calico's `timestamp`
        source = {**event, **added, "cluster": "gamma", "tenant": "acme"}
        if event.get("apiVersion") == "audit.k8s.io/v1" and "stageTimestamp" in event:
            source["timestamp"] = event["stageTimestamp"]
        return Placed(TENANT, source, "gamma")
    shared = {**added, "tenant": "acme", "audit_type": "kube"}
    if slot == 3:
        return Placed(SHARED, {**event, **shared, "cluster": "delta"}, "delta")
    if slot == 4:
        return Placed(SHARED, {**event, **shared, "cluster": "epsilon"}, "epsilon")
    return Placed(SHARED, {**event, **shared, "cluster": "delta", "audit_type": "ee"}, None)


def calico_documents(events: list[dict[str, Any]], *, first_seq: int = 0) -> list[Placed]:
    """Events spread round-robin over every generation (one slot in six is an ee document)."""
    return [calico_document(e, i % 6, first_seq + i) for i, e in enumerate(events)]


def expected_keys(placed: list[Placed]) -> set[tuple[str, str, str]]:
    """(cluster, auditID, stage) of every document the poller must store."""
    return {
        (p.cluster, p.source["auditID"], p.source["stage"]) for p in placed if p.cluster is not None
    }


def load_calico(url: str, placed: list[Placed]) -> list[str]:
    """Index documents; the beta documents are split over the alias's two rollover indices."""
    beta = [p for p in placed if p.target == ROLLOVER_ALIAS]
    half = {id(p) for p in beta[: len(beta) // 2]}
    first = [(p.target, p.source) for p in placed if p.target != ROLLOVER_ALIAS or id(p) in half]
    ids = bulk_index(url, first)
    rollover(url)
    ids += bulk_index(
        url,
        [(p.target, p.source) for p in placed if p.target == ROLLOVER_ALIAS and id(p) not in half],
    )
    return ids


def v1_events() -> list[dict[str, Any]]:
    """audit.k8s.io/v1 fixture events with distinct auditIDs (the Elastic ones share one)."""
    seen: set[str] = set()
    events = []
    for event in fixture_events():
        if event.get("apiVersion") == "audit.k8s.io/v1" and event["auditID"] not in seen:
            seen.add(event["auditID"])
            events.append(event)
    return events
