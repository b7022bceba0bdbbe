"""What the real fixtures should turn into, computed independently of the app's code.

An item is an Event when it is an object with string auditID/stage/verb, a known kind and
apiVersion (or none), and a stage time; AKS diagnostic records carry one in properties.log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_VERSIONS = {None, "audit.k8s.io/v1", "audit.k8s.io/v1beta1"}


def unwrap(item: Any) -> Any:
    """The Event inside an AKS diagnostic record, else the item itself."""
    if isinstance(item, dict) and "auditID" not in item:
        log = (item.get("properties") or {}).get("log")
        if isinstance(log, str):
            log = json.loads(log)
        if isinstance(log, dict):
            return log
    return item


def is_event(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and all(isinstance(item.get(k), str) and item[k] for k in ("auditID", "stage", "verb"))
        and item.get("kind", "Event") == "Event"
        and item.get("apiVersion") in API_VERSIONS
        and ("stageTimestamp" in item or "timestamp" in item)
    )


@dataclass
class Expected:
    """First occurrence of each (auditID, stage), and how many items are not Events."""

    events: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    items: int = 0
    not_events: int = 0

    @property
    def duplicates(self) -> int:
        return self.items - self.not_events - len(self.events)


def expected_from(path: Path) -> Expected:
    expected = Expected()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        expected.items += 1
        item = unwrap(json.loads(line))
        if is_event(item):
            expected.events.setdefault((item["auditID"], item["stage"]), item)
        else:
            expected.not_events += 1
    return expected
