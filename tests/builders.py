"""Plain builder functions for valid audit.k8s.io/v1 events (tests override what they need)."""

from __future__ import annotations

import copy
import uuid
from typing import Any


def audit_event(**overrides: Any) -> dict[str, Any]:
    """A valid ResponseComplete event; keyword arguments replace top-level fields."""
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": str(uuid.uuid4()),
        "stage": "ResponseComplete",
        "requestURI": "/apis/networking.k8s.io/v1/namespaces/payments/networkpolicies",
        "verb": "create",
        "user": {"username": "alice@example.com", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.31.0",
        "objectRef": {
            "resource": "networkpolicies",
            "namespace": "payments",
            "name": "allow-web",
            "apiGroup": "networking.k8s.io",
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": 201},
        "requestReceivedTimestamp": "2026-11-20T10:00:00.000001Z",
        "stageTimestamp": "2026-11-20T10:00:00.004000Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    event.update(copy.deepcopy(overrides))
    return event


def event_list(items: list[dict[str, Any]], api_version: str = "audit.k8s.io/v1") -> dict[str, Any]:
    """An EventList as the webhook backend posts it."""
    return {"kind": "EventList", "apiVersion": api_version, "metadata": {}, "items": items}


def secret_event(data: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """A Secret create at RequestResponse level carrying data."""
    body = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "db-password", "namespace": "payments"},
        "type": "Opaque",
        "data": data,
    }
    defaults: dict[str, Any] = {
        "objectRef": {
            "resource": "secrets",
            "namespace": "payments",
            "name": "db-password",
            "apiVersion": "v1",
        },
        "requestURI": "/api/v1/namespaces/payments/secrets",
        "requestObject": body,
        "responseObject": body,
    }
    return audit_event(**{**defaults, **overrides})
