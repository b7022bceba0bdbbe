"""Calico audit documents -> items for the shared intake path (pure: no I/O).

Knows Calico's index naming generations, the fields Calico adds to each Event, and how the
cluster of a document is chosen. Does not normalise events (app.audit.intake does that).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.audit.intake import RawItem, item_from_value
from app.settings import validate_cluster_name

ClusterFrom = Literal["auto", "document", "index", "fixed"]

# Fields Calico's log pipeline adds beside the Event. `name` is always an addition (an Event has
# no top-level name); `timestamp` only on v1 Events (see split_calico_fields).
CALICO_FIELDS = ("name", "cluster", "generated_time", "tenant", "audit_type")
V1 = "audit.k8s.io/v1"

# tigera_secure_ee_audit_kube.[<tenant>.]<cluster>.<yyyyMMdd | fluentd-<yyyyMMdd>-<n>>.
# With a dotted cluster name and no tenant the split is ambiguous; the tenant form wins, and
# in "auto" mode the document's own `cluster` field (newer pipelines) takes precedence anyway.
_KUBE_INDEX_RE = re.compile(
    r"^tigera_secure_ee_audit_kube\."
    r"(?:(?P<tenant>[^.]+)\.)?(?P<cluster>[^.]+(?:\.[^.]+)*?)\."
    r"(?P<suffix>\d{8}|fluentd-\d{8}-\d+)$"
)
_SINGLE_INDEX_PREFIX = "calico_auditlogs"


@dataclass(frozen=True)
class IndexName:
    """What an index name says: naming generation, tenant and cluster (when it names them)."""

    generation: Literal["daily", "rollover", "shared", "unknown"]
    cluster: str | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class Document:
    """One hit, ready for prepare_batch: the cluster it belongs to and the item."""

    cluster: str
    item: RawItem


def parse_index_name(index: str) -> IndexName:
    """Read the generation, tenant and cluster from a Calico audit index name."""
    match = _KUBE_INDEX_RE.match(index)
    if match:
        generation: Literal["daily", "rollover"] = (
            "rollover" if match["suffix"].startswith("fluentd-") else "daily"
        )
        return IndexName(generation, cluster=match["cluster"], tenant=match["tenant"])
    if index == _SINGLE_INDEX_PREFIX or index.startswith(_SINGLE_INDEX_PREFIX + "."):
        return IndexName("shared")
    return IndexName("unknown")


def _valid_cluster(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return validate_cluster_name(value)
    except ValueError:
        return None


def resolve_cluster(
    doc_cluster: Any, index: IndexName, *, cluster_from: ClusterFrom, default: str
) -> str:
    """The cluster of a document: the first usable of the sources cluster_from allows."""
    if cluster_from == "fixed":
        return default
    candidates: list[Any] = []
    if cluster_from in ("auto", "document"):
        candidates.append(doc_cluster)
    if cluster_from in ("auto", "index"):
        candidates.append(index.cluster)
    for candidate in candidates:
        name = _valid_cluster(candidate)
        if name is not None:
            return name
    return default


def split_calico_fields(source: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the Event as the API server wrote it from the fields Calico added.

    `timestamp` is Calico's (a copy of stageTimestamp) only on audit.k8s.io/v1 Events: v1beta1
    Events, and version-less ones written by old API servers, carry their own `timestamp`,
    which stays in the Event.
    """
    event = dict(source)
    added: dict[str, Any] = {}
    for key in CALICO_FIELDS:
        if key in event:
            added[key] = event.pop(key)
    if "timestamp" in event and event.get("apiVersion") == V1:
        added["timestamp"] = event.pop("timestamp")
    return event, added


def is_kube_audit(source: Mapping[str, Any]) -> bool:
    """False for documents of other audit types (shared-index `audit_type: ee`)."""
    audit_type = source.get("audit_type")
    return audit_type is None or audit_type == "kube"


def read_hit(
    hit: Mapping[str, Any], *, cluster_from: ClusterFrom, default_cluster: str
) -> Document | None:
    """One search hit as a Document; None when it is not a Kubernetes audit document."""
    index = printable(str(hit.get("_index", "")))
    doc_id = printable(str(hit.get("_id", "")))
    source = hit.get("_source")
    origin = f"es:{index}/{doc_id}"
    es_meta = {"index": index, "id": doc_id}
    if not isinstance(source, dict):
        raw = json.dumps(source).encode()
        item = RawItem(raw=raw, error="_source is not a JSON object", origin=origin)
        return Document(default_cluster, item)
    if not is_kube_audit(source):
        return None
    cluster = resolve_cluster(
        source.get("cluster"),
        parse_index_name(index),
        cluster_from=cluster_from,
        default=default_cluster,
    )
    raw = json.dumps(source, ensure_ascii=True).encode()
    event, added = split_calico_fields(source)
    meta: dict[str, Any] = {"es": es_meta}
    if added:
        meta["calico"] = added
    return Document(cluster, item_from_value(event, origin, raw=raw, meta=meta))


def printable(text: str) -> str:
    """Text PostgreSQL can store: NUL and lone surrogates (hostile index names, _ids) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
