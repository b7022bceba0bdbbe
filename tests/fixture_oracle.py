"""What audit log lines should turn into, worked out independently of the app's code.

An item is an Event when it is an object with string auditID/stage/verb, a known kind and
apiVersion (or none), a stage time and no NUL character; AKS diagnostic records carry one in
properties.log. The first Event of an identity (auditID, stage) is stored; an exact repeat is a
duplicate; a different Event under a taken identity is quarantined as a conflict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_VERSIONS = {None, "audit.k8s.io/v1", "audit.k8s.io/v1beta1"}
# Where resources of the legacy extensions group live today (the Kubernetes API reference):
# requests through either group are one resource.
MOVED_FROM_EXTENSIONS = {
    "networkpolicies": "networking.k8s.io",
    "ingresses": "networking.k8s.io",
    "deployments": "apps",
    "daemonsets": "apps",
    "replicasets": "apps",
    "podsecuritypolicies": "policy",
}


def unwrap(item: Any) -> Any:
    """The Event inside an AKS diagnostic record (properties.log, object or JSON string)."""
    if not isinstance(item, dict) or "auditID" in item:
        return item
    props = item.get("properties")
    log = props.get("log") if isinstance(props, dict) else None
    if isinstance(log, str):
        try:
            log = json.loads(log)
        except ValueError:
            return item
    return log if isinstance(log, dict) and "auditID" in log else item


def contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


def is_event(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and all(isinstance(item.get(k), str) and item[k] for k in ("auditID", "stage", "verb"))
        and item.get("kind", "Event") == "Event"
        and item.get("apiVersion") in API_VERSIONS
        and ("stageTimestamp" in item or "timestamp" in item)
        and not contains_nul(item)
    )


@dataclass
class Expected:
    """First Event of each identity, exact repeats, conflicts, and lines that are no Event."""

    events: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    conflicts: int = 0
    not_event_origins: set[str] = field(default_factory=set)
    # Distinct contents: the quarantine keeps the same bytes from one sender once.
    distinct_quarantined: set[str] = field(default_factory=set)
    distinct_conflicts: set[str] = field(default_factory=set)

    @property
    def quarantined(self) -> int:
        """Items the answers count as quarantined."""
        return len(self.not_event_origins) + self.conflicts

    def add(self, item: Any, origin: str) -> None:
        event = unwrap(item)
        if not is_event(event):
            self.not_event_origins.add(origin)
            self.distinct_quarantined.add(json.dumps(item, sort_keys=True))
            return
        key = (event["auditID"], event["stage"])
        if key not in self.events:
            self.events[key] = event
        elif self.events[key] == event:
            self.duplicates += 1
        else:
            self.conflicts += 1
            self.distinct_conflicts.add(json.dumps(event, sort_keys=True))
            self.distinct_quarantined.add(json.dumps(event, sort_keys=True))


def expected_from(paths: Path | Iterable[Path]) -> Expected:
    """Classify every non-blank line of the files, as one cluster (keys dedupe across files)."""
    expected = Expected()
    for path in [paths] if isinstance(paths, Path) else paths:
        for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                item = None
            expected.add(item, f"{path.name}:{number}")
    return expected
