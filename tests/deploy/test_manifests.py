"""Everything under deploy/ (but the Helm templates, see test_helm_chart): valid against the
Kubernetes API schemas, settings spelled as the app reads them, generated files up to date.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.audit.policy import Policy, Request, evaluate, load_policies
from app.cli import main
from tests.deploy.kube import (
    PROJECT,
    check_app_deployment,
    unknown_settings,
    validate_api_objects,
)

pytestmark = pytest.mark.deploy

DEPLOY = PROJECT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
HELM_TEMPLATES = DEPLOY / "helm" / "audit-timeline" / "templates"


def deploy_yaml_files() -> list[Path]:
    files = [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    return sorted(p for p in files if HELM_TEMPLATES not in p.parents)


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_kubernetes_object_under_deploy_is_valid() -> None:
    validated: dict[str, list[str]] = {}
    for path in deploy_yaml_files():
        documents = load(path)
        if path.parent.name == "ci" or path.name in ("values.yaml", "Chart.yaml"):
            continue  # Helm inputs: rendered and validated by test_helm_chart
        assert documents, path
        validated[path.name] = validate_api_objects(documents)
    assert validated["deployment.yaml"] == [
        "ServiceAccount",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Ingress",
    ]
    assert validated["kube-apiserver-static-pod.yaml"] == ["Pod"]
    # The policies and the kubeconfig are no API objects: checked below.
    assert validated["audit-policy.yaml"] == validated["webhook-kubeconfig.yaml"] == []


def test_validation_is_strict() -> None:
    [deployment] = [d for d in load(KUBERNETES / "deployment.yaml") if d["kind"] == "Deployment"]
    broken = copy.deepcopy(deployment)
    broken["spec"]["replica"] = 2  # a typo the API server would reject (or silently drop)
    with pytest.raises(jsonschema.ValidationError):
        validate_api_objects([broken])


def test_plain_deployment() -> None:
    documents = {d["kind"]: d for d in load(KUBERNETES / "deployment.yaml")}
    deployment = documents["Deployment"]
    check_app_deployment(deployment)
    pod = deployment["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["envFrom"] == [{"secretRef": {"name": "audit-timeline"}}]
    ingress = documents["Ingress"]["spec"]
    assert ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]


def test_settings_named_anywhere_in_deploy_are_real_settings() -> None:
    texts = [p.read_text() for p in DEPLOY.rglob("*") if p.is_file()]
    texts += [(PROJECT / name).read_text() for name in (".env.example", "docker-compose.yml")]
    assert not unknown_settings("\n".join(texts))
    # The comment that used to name the Secret keys without the prefix.
    comment = (KUBERNETES / "deployment.yaml").read_text().split("apiVersion:")[0]
    keys = re.findall(r"--from-literal=([A-Z_]+)=", comment)
    assert keys
    assert all(k.startswith("AUDIT_TIMELINE_") for k in keys)


def test_flags_file_has_nothing_after_a_flag() -> None:
    lines = (KUBERNETES / "kube-apiserver-flags.txt").read_text().splitlines()
    flags = [line for line in lines if not line.startswith("#")]
    assert flags
    assert all(re.fullmatch(r"--[a-z-]+=\S+", line) for line in flags), flags


GENERATED = {
    "kube-apiserver-flags.txt": ["--format", "flags"],
    "kube-apiserver-static-pod.yaml": ["--format", "static-pod"],
    "webhook-kubeconfig.yaml": [],
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_examples_match_the_command(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIT_TIMELINE_INGEST_TOKENS", "REPLACE-WITH-THE-INGEST-TOKEN=my-cluster")
    monkeypatch.setenv("AUDIT_TIMELINE_DATA_DIR", str(tmp_path))
    for setting in ("INGEST_MAX_BODY_BYTES", "INGEST_MAX_ITEMS"):
        monkeypatch.delenv(f"AUDIT_TIMELINE_{setting}", raising=False)
    url = "https://audit-timeline.example.com/ingest"
    args = ["webhook-config", "--cluster", "my-cluster", "--server-url", url, *GENERATED[name]]
    assert main(args) == 0
    generated = capsys.readouterr().out
    committed = (KUBERNETES / name).read_text()
    # Regenerate with the command in the file's "# Generated:" line.
    assert f"# Generated: audit-timeline {' '.join(args)}\n" in committed
    assert committed.endswith(generated)


def level_for(policy: Policy, request: dict[str, str]) -> str:
    """The level kube-apiserver gives request (app.audit.policy, the check-policy evaluator)."""
    resource, _, subresource = request.get("resource", "").partition("/")
    return evaluate(
        policy,
        Request(
            verb=request["verb"],
            user=request.get("user", ""),
            is_resource="path" not in request,
            api_group=request.get("group", ""),
            resource=resource,
            subresource=subresource,
            path=request.get("path", ""),
        ),
    ).level


# (request, level) pairs: what Calico requires, then what the recommended policy adds.
CALICO = [
    (
        {"verb": "patch", "group": "networking.k8s.io", "resource": "networkpolicies"},
        "RequestResponse",
    ),
    ({"verb": "create", "group": "extensions", "resource": "networkpolicies"}, "RequestResponse"),
    ({"verb": "delete", "resource": "pods"}, "RequestResponse"),
    ({"verb": "update", "resource": "namespaces"}, "RequestResponse"),
    ({"verb": "create", "resource": "serviceaccounts"}, "RequestResponse"),
    ({"verb": "patch", "resource": "endpoints"}, "RequestResponse"),
    ({"verb": "get", "resource": "pods"}, "None"),
]
RECOMMENDED = [
    *CALICO,
    (
        {"verb": "create", "group": "rbac.authorization.k8s.io", "resource": "clusterrolebindings"},
        "RequestResponse",
    ),
    (
        {"verb": "patch", "group": "rbac.authorization.k8s.io", "resource": "roles"},
        "RequestResponse",
    ),
    ({"verb": "get", "resource": "secrets"}, "Metadata"),
    ({"verb": "update", "resource": "secrets"}, "Metadata"),
    ({"verb": "create", "resource": "serviceaccounts/token"}, "Metadata"),
    ({"verb": "create", "resource": "pods/exec"}, "Metadata"),
    ({"verb": "get", "resource": "pods/attach"}, "Metadata"),
    ({"verb": "create", "resource": "pods/portforward"}, "Metadata"),
    ({"verb": "update", "group": "coordination.k8s.io", "resource": "leases"}, "None"),
    ({"verb": "create", "resource": "events"}, "None"),
    ({"verb": "get", "path": "/healthz"}, "None"),
    ({"verb": "get", "path": "/readyz/etcd"}, "None"),
    ({"verb": "watch", "resource": "endpoints", "user": "system:kube-proxy"}, "None"),
    ({"verb": "patch", "group": "apps", "resource": "deployments"}, "Metadata"),
    ({"verb": "list", "group": "apps", "resource": "deployments"}, "None"),
]


@pytest.mark.parametrize(
    ("name", "expectations"),
    [("audit-policy.yaml", CALICO), ("audit-policy-recommended.yaml", RECOMMENDED)],
)
def test_audit_policies(name: str, expectations: list[tuple[dict[str, str], str]]) -> None:
    path = KUBERNETES / name
    [policy] = load_policies(path.read_text(), source=name)  # PolicyError on any unknown field
    assert policy.api_version == "audit.k8s.io/v1"
    assert policy.warnings == ()
    assert policy.omit_stages == {"RequestReceived"}
    got = [(request, level_for(policy, request)) for request, _ in expectations]
    assert got == expectations


def test_minimal_policy_is_the_calico_sample() -> None:
    sample = PROJECT.parent / "shared" / "fixtures" / "policy" / "calico-sample-policy.yaml"
    if not sample.is_file():
        pytest.skip("../shared is not beside the project")
    [mine] = load(KUBERNETES / "audit-policy.yaml")
    [calico] = load(sample)
    # Plus an explicit catch-all None: what kube-apiserver does with unmatched requests anyway.
    assert mine["rules"] == [*calico["rules"], {"level": "None"}]
