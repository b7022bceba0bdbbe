"""What every deployment of audit-timeline must get right, checked on rendered manifests.

Shared by the Helm chart, deploy/kubernetes and compose tests; plain functions, no fixtures.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate

from app.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.37"
# Kinds without a schema in kubernetes-validate (CRDs, kube-apiserver's own file formats): each
# is checked by a test of its own instead.
NOT_API_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("audit.k8s.io/v1", "Policy"),
    ("v1", "Config"),
}
SETTING_RE = re.compile(r"\bAUDIT_TIMELINE_([A-Z0-9_]+)")


def validate_api_objects(documents: list[dict[str, Any]]) -> list[str]:
    """Validate each API object strictly (unknown fields fail); return the kinds validated."""
    kinds = []
    for doc in documents:
        if (doc["apiVersion"], doc["kind"]) in NOT_API_KINDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        kinds.append(doc["kind"])
    return kinds


def unknown_settings(text: str) -> set[str]:
    """AUDIT_TIMELINE_* names in text that are no setting (a typo or a missing prefix is ignored
    silently by the app, so it is caught here)."""
    names = {m.group(1).lower() for m in SETTING_RE.finditer(text)}
    return {n for n in names if n not in Settings.model_fields}


def env_names(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def check_app_deployment(deployment: dict[str, Any], *, tcp_probes: bool = False) -> None:
    """Replicas, migrations, probes, resources and security of the app's Deployment."""
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    [migrate] = pod["initContainers"]
    assert migrate["command"][-1] == "migrate"
    app = next(c for c in pod["containers"] if c["name"] == "app")
    assert app["command"][-1] == "serve"
    for container in (migrate, app):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        env = env_names(container)
        assert env["AUDIT_TIMELINE_REQUIRE_DATABASE_URL"]["value"] == "true"
        # A read-only root filesystem: everything written goes to mounted volumes.
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", env["AUDIT_TIMELINE_DATA_DIR"]["value"]} <= mounts
    if tcp_probes:
        # Client certificates required: the kubelet cannot finish a TLS handshake.
        assert app["livenessProbe"]["tcpSocket"] == app["readinessProbe"]["tcpSocket"]
        return
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # /readyz is 503 while PostgreSQL is down; as readiness it would hide that 503 from senders.
    assert app["readinessProbe"]["httpGet"]["path"] == "/healthz"
