"""The Helm chart: `helm lint`, `helm template`, every rendered object valid against the
Kubernetes API schemas (kubernetes-validate, strict), and the behaviour the values promise.

helm is built from its Go module by scripts/install-helm (run by `scripts/setup --test`).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.builders import audit_event
from tests.deploy.kube import (
    PROJECT,
    check_app_deployment,
    env_names,
    unknown_settings,
    validate_api_objects,
)
from tests.ingest.test_database_down import (  # noqa: F401 - fixtures used by name
    down_client,
    down_database_url,
    post_batch,
)
from tests.pg import TestPostgres

pytestmark = pytest.mark.deploy

HELM = PROJECT / ".cache" / "bin" / "helm"
CHART = PROJECT / "deploy" / "helm" / "audit-timeline"
MINIMAL = CHART / "ci" / "minimal-values.yaml"
FULL = CHART / "ci" / "full-values.yaml"
CLIENT_CERTS = CHART / "ci" / "client-certs-values.yaml"


def helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert HELM.is_file(), "helm is missing: run scripts/install-helm (scripts/setup --test does)"
    return subprocess.run(
        [str(HELM), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def render(*values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args: list[str | Path] = ["template", "at", CHART, "--namespace", "audit"]
    for path in values:
        args += ["--values", path]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [doc["kind"] for doc in documents]
    assert len(kinds) == len(set(kinds)), kinds
    return {doc["kind"]: doc for doc in documents}


def render_checked(
    *values: Path, validated: set[str], sets: tuple[str, ...] = (), tcp_probes: bool = False
) -> dict[str, dict[str, Any]]:
    """Render; every API object valid (strict) and exactly the kinds validated; the app's
    Deployment checked; every setting name real. Returns the objects by kind."""
    documents = render(*values, sets=sets)
    assert sorted(validate_api_objects(documents)) == sorted(validated)
    assert not unknown_settings(yaml.safe_dump_all(documents))
    objects = by_kind(documents)
    check_app_deployment(objects["Deployment"], tcp_probes=tcp_probes)
    return objects


COMMON_KINDS = {"Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}


@pytest.mark.parametrize(
    "values", [MINIMAL, FULL, CLIENT_CERTS], ids=["minimal", "full", "client-certs"]
)
def test_helm_lint(values: Path) -> None:
    result = helm("lint", "--strict", CHART, "--values", values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_minimal_install_renders_valid_objects() -> None:
    objects = render_checked(MINIMAL, validated=COMMON_KINDS | {"Secret"})
    secret = objects["Secret"]
    assert set(secret["stringData"]) == {
        "AUDIT_TIMELINE_DATABASE_URL",
        "AUDIT_TIMELINE_REDACTION_KEY",
        "AUDIT_TIMELINE_INGEST_TOKENS",
    }
    app = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = env_names(app)
    for key in secret["stringData"]:
        assert env[key]["valueFrom"]["secretKeyRef"] == {
            "name": secret["metadata"]["name"],
            "key": key,
            **({"optional": True} if "TOKENS" in key else {}),
        }
    # The pods roll when the Secret the chart made changes.
    assert objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
    assert objects["Service"]["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]


def test_full_install_renders_valid_objects() -> None:
    objects = render_checked(FULL, validated=COMMON_KINDS | {"Ingress"})
    assert "Secret" not in objects  # existingSecret: both Secrets are the user's
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    app, proxy = pod["containers"]
    env = env_names(app)
    assert env["AUDIT_TIMELINE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
        "audit-timeline-secrets"
    )
    # In-pod TLS: files from the Secret, probes over HTTPS, client certificates required.
    assert env["AUDIT_TIMELINE_TLS_CERTFILE"]["value"] == "/etc/audit-timeline/tls/tls.crt"
    assert "AUDIT_TIMELINE_TLS_CLIENT_CA" not in env
    assert app["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "audit-timeline-serving-cert"
    # oauth2-proxy beside the app: the app believes the user header only from loopback.
    assert env["AUDIT_TIMELINE_AUTH_PROXY_ADDRESSES"]["value"] == "127.0.0.1/32"
    assert proxy["name"] == "oauth2-proxy"
    assert "--upstream=https://127.0.0.1:8000/" in proxy["args"]
    assert "--email-domain=example.com" in proxy["args"]
    assert proxy["securityContext"]["readOnlyRootFilesystem"] is True
    proxy_env = env_names(proxy)
    assert proxy_env["OAUTH2_PROXY_COOKIE_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == (
        "audit-timeline-oauth2-proxy"
    )
    assert env["AUDIT_TIMELINE_ES_URL"]["value"].startswith("https://")
    # Ingress: TLS; machines to the app, people to the proxy.
    ingress = objects["Ingress"]["spec"]
    assert ingress["tls"] == [{"hosts": ["audit.example.com"], "secretName": "audit-timeline-tls"}]
    paths = {
        p["path"]: p["backend"]["service"]["port"]["name"]
        for p in ingress["rules"][0]["http"]["paths"]
    }
    assert paths == {"/ingest": "http", "/api/": "http", "/": "ui"}
    assert {p["name"] for p in objects["Service"]["spec"]["ports"]} == {"http", "ui"}
    monitor = objects["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0] | {"tlsConfig": None} == {
        "port": "http",
        "path": "/metrics",
        "interval": "30s",
        "scheme": "https",
        "tlsConfig": None,
    }
    assert monitor["spec"]["selector"] == deployment["spec"]["selector"]
    assert objects["PodDisruptionBudget"]["spec"]["selector"] == deployment["spec"]["selector"]


def test_client_certificates_install() -> None:
    objects = render_checked(CLIENT_CERTS, validated=COMMON_KINDS, tcp_probes=True)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    env = env_names(pod["containers"][0])
    assert env["AUDIT_TIMELINE_TLS_CLIENT_CA"]["value"] == "/etc/audit-timeline/client-ca/ca.crt"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["client-ca"]["secret"]["secretName"] == "audit-timeline-client-ca"
    assert objects["Service"]["spec"]["type"] == "LoadBalancer"
    assert objects["Service"]["spec"]["ports"][0]["port"] == 443


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ((), "set secrets.databaseUrl"),
        (("secrets.databaseUrl=postgresql://db/x",), "set secrets.redactionKey"),
        (("secrets.existingSecret=s", "oauth2Proxy.enabled=true"), "oauth2Proxy.enabled needs"),
        (
            (
                "secrets.existingSecret=s",
                "oauth2Proxy.enabled=true",
                "oauth2Proxy.existingSecret=p",
                "tls.secretName=t",
                "tls.clientCaSecret=c",
            ),
            "do not go together",
        ),
    ],
)
def test_install_without_required_values_fails_with_a_reason(
    sets: tuple[str, ...], message: str
) -> None:
    args: list[str | Path] = ["template", "at", CHART]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode != 0
    assert message in result.stderr


def test_replicas_and_switches() -> None:
    documents = render(
        MINIMAL,
        sets=("replicaCount=4", "podDisruptionBudget.enabled=false", "migrations.enabled=false"),
    )
    objects = by_kind(documents)
    assert "PodDisruptionBudget" not in objects
    assert objects["Deployment"]["spec"]["replicas"] == 4
    assert "initContainers" not in objects["Deployment"]["spec"]["template"]["spec"]


@pytest.mark.asyncio(loop_scope="session")
async def test_chart_probes_keep_the_503_visible_while_the_database_is_down(
    stoppable_postgres: TestPostgres,
    down_client: httpx.AsyncClient,  # noqa: F811 - the fixture imported above
) -> None:
    app = by_kind(render(MINIMAL))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    stoppable_postgres.stop()
    try:
        ready = await down_client.get(app["readinessProbe"]["httpGet"]["path"])
        alive = await down_client.get(app["livenessProbe"]["httpGet"]["path"])
        posted = await post_batch(down_client, [audit_event()])
    finally:
        stoppable_postgres.start()
    # The pod stays an endpoint, so kube-apiserver reaches it and is told to retry.
    assert (ready.status_code, alive.status_code) == (200, 200)
    assert posted.status_code == 503
    assert int(posted.headers["Retry-After"]) > 0


def test_cert_manager_annotation_as_the_readme_sets_it() -> None:
    sets = ("ingress.enabled=true", "ingress.annotations.cert-manager\\.io/cluster-issuer=le")
    ingress = by_kind(render(MINIMAL, sets=sets))["Ingress"]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "le"}
    assert ingress["spec"]["tls"][0]["secretName"] == "audit-timeline-tls"


def test_readme_install_command_renders() -> None:
    """The `helm install` of the README, as `helm template`: valid objects, nothing to edit."""
    readme = (PROJECT / "README.md").read_text()
    block = readme.split("```sh\nhelm install ", 1)[1].split("```", 1)[0]
    words = shlex.split(block.replace("\\\n", " "))
    assert words[:2] == ["audit-timeline", "deploy/helm/audit-timeline"]
    args = [a for a in words[2:] if a != "--create-namespace"]
    # $(openssl ...) stays literal here: any string does for rendering.
    result = helm("template", words[0], PROJECT / words[1], *args)
    assert result.returncode == 0, result.stderr
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    objects = by_kind(documents)
    assert sorted(validate_api_objects(documents)) == sorted(
        ["Deployment", "Ingress", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"]
    )
    check_app_deployment(objects["Deployment"])
    assert objects["Ingress"]["spec"]["rules"][0]["host"] == "audit.example.com"
    # The README's next step execs into this Deployment's app container.
    name = objects["Deployment"]["metadata"]["name"]
    assert f"exec deploy/{name} -c app -- audit-timeline webhook-config" in readme
    assert [c["name"] for c in objects["Deployment"]["spec"]["template"]["spec"]["containers"]] == [
        "app"
    ]
    assert objects["Secret"]["stringData"]["AUDIT_TIMELINE_INGEST_TOKENS"].endswith("=prod-eu-1")
