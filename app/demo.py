"""Sample data: the open real fixtures when the project sits beside ../shared, else generated
events (deterministic), shaped like what Calico's sample audit policy records.

Also the generator behind the benchmarks' larger data sets.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app import PROJECT_DIR

FIXTURES_DIR = PROJECT_DIR.parent / "shared" / "fixtures" / "real"

_USERS = [
    ("alice@example.com", ["developers", "system:authenticated"]),
    ("bob@example.com", ["sre", "system:authenticated"]),
    ("system:serviceaccount:kube-system:calico-kube-controllers", ["system:serviceaccounts"]),
    ("system:serviceaccount:argocd:argocd-application-controller", ["system:serviceaccounts"]),
    ("carol@example.com", ["security", "system:authenticated"]),
]
_NAMESPACES = ["default", "payments", "frontend", "kube-system", "monitoring"]
_AGENTS = [
    "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
    "argocd-controller/v2.13",
    "Go-http-client/2.0",
]


def fixture_files(directory: Path | None = None) -> list[Path]:
    """The real JSON-lines fixtures, if the shared folder is beside the project."""
    folder = directory or FIXTURES_DIR
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _policy(
    rng: random.Random, namespace: str, name: str, ports: list[int], group: str
) -> dict[str, Any]:
    return {
        "kind": "NetworkPolicy",
        "apiVersion": f"{group}/v1" if group != "extensions" else "extensions/v1beta1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}")),
            "resourceVersion": str(rng.randint(1000, 999999)),
            "generation": len(ports),
            "creationTimestamp": "2026-01-05T10:00:00Z",
            "labels": {"app": name.split("-")[0]},
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": name.split("-")[0]}},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": p} for p in ports]}],
        },
    }


def generate_events(
    count: int, *, seed: int = 7, end: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """count audit.k8s.io/v1 events over the week before end, oldest first."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    start = end - timedelta(days=7)
    step = (end - start) / max(count, 1)
    versions: dict[tuple[str, str], list[int]] = {}
    for i in range(count):
        at = start + step * i
        user, groups = rng.choice(_USERS)
        namespace = rng.choice(_NAMESPACES)
        roll = rng.random()
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "stage": "ResponseComplete",
            "user": {"username": user, "groups": groups},
            "sourceIPs": [f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"],
            "userAgent": rng.choice(_AGENTS),
            "requestReceivedTimestamp": at.isoformat().replace("+00:00", "Z"),
            "stageTimestamp": (at + timedelta(milliseconds=rng.randint(2, 40)))
            .isoformat()
            .replace("+00:00", "Z"),
            "annotations": {"authorization.k8s.io/decision": "allow"},
        }
        if roll < 0.35:
            group = "networking.k8s.io" if rng.random() < 0.8 else "extensions"
            name = rng.choice(["web-allow", "db-deny-all", "api-egress", "metrics-scrape"])
            key = (namespace, name)
            verb = "create" if key not in versions else rng.choice(["patch", "update", "delete"])
            ports = sorted(rng.sample([80, 443, 5432, 6379, 8080, 9090], rng.randint(1, 3)))
            path = f"/apis/{group}/v1/namespaces/{namespace}/networkpolicies"
            event.update(
                level="RequestResponse",
                verb=verb,
                objectRef={
                    "resource": "networkpolicies",
                    "namespace": namespace,
                    "name": name,
                    "apiGroup": group,
                    "apiVersion": "v1",
                },
                requestURI=path if verb == "create" else f"{path}/{name}",
            )
            if verb == "delete":
                versions.pop(key, None)
                event["responseStatus"] = {"metadata": {}, "status": "Success", "code": 200}
                event["responseObject"] = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Success",
                }
            else:
                versions[key] = ports
                body = _policy(rng, namespace, name, ports, group)
                if verb == "patch":
                    event["requestObject"] = {"spec": body["spec"]}
                else:
                    event["requestObject"] = body
                event["responseObject"] = body
                code = 201 if verb == "create" else 200
                event["responseStatus"] = {"metadata": {}, "code": code}
        elif roll < 0.5:
            name = f"{rng.choice(['web', 'api', 'worker'])}-{rng.getrandbits(20):05x}"
            verb = rng.choice(["create", "delete"])
            denied = rng.random() < 0.1
            code = 403 if denied else (201 if verb == "create" else 200)
            event.update(
                verb=verb,
                objectRef={
                    "resource": "pods",
                    "namespace": namespace,
                    "name": name,
                    "apiVersion": "v1",
                },
                requestURI=f"/api/v1/namespaces/{namespace}/pods"
                + ("" if verb == "create" else f"/{name}"),
                responseStatus={
                    "metadata": {},
                    "code": 403 if denied else (201 if verb == "create" else 200),
                },
            )
            if denied:
                event["responseStatus"].update(status="Failure", reason="Forbidden")
                event["annotations"] = {"authorization.k8s.io/decision": "forbid"}
        else:
            resource = rng.choice(["pods", "endpoints", "serviceaccounts", "namespaces"])
            event.update(
                verb=rng.choice(["get", "list", "watch"]),
                objectRef={"resource": resource, "namespace": namespace, "apiVersion": "v1"},
                requestURI=f"/api/v1/namespaces/{namespace}/{resource}",
                responseStatus={"metadata": {}, "code": 200},
            )
        yield event
