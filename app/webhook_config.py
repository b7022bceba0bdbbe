"""What a kube-apiserver needs to send its audit webhook to audit-timeline (`webhook-config`).

Builds the webhook kubeconfig, the audit flags, the static-pod mounts and a kubeadm
ClusterConfiguration from the running settings; pure (reads only the files it is given).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from cryptography import x509

from app.settings import Settings
from app.tls import tls_directory

Format = Literal["kubeconfig", "flags", "static-pod", "kubeadm"]
FORMATS: tuple[Format, ...] = ("kubeconfig", "flags", "static-pod", "kubeadm")

# kube-apiserver's own limits (see SPEC "Facts about the sender").
APISERVER_MAX_BATCH_EVENTS = 400
APISERVER_MAX_BATCH_BYTES = 10 * 1024 * 1024
# Room for the EventList envelope and JSON escaping above the truncation limit.
BODY_MARGIN_BYTES = 512 * 1024
VOLUME_NAME = "audit-timeline"
KUBECONFIG_FILE = "webhook-kubeconfig.yaml"
POLICY_FILE = "audit-policy.yaml"
DEFAULT_HOST_DIR = PurePosixPath("/etc/kubernetes/audit")


class WebhookConfigError(ValueError):
    """The inputs cannot make a configuration that would work; the message says why."""


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None


@dataclass(frozen=True)
class WebhookConfig:
    cluster: str
    server_url: str
    credentials: Credentials
    ca_pem: bytes | None
    host_dir: PurePosixPath
    batch_max_size: int
    truncate_max_batch_bytes: int | None

    @property
    def kubeconfig_path(self) -> PurePosixPath:
        return self.host_dir / KUBECONFIG_FILE

    @property
    def policy_path(self) -> PurePosixPath:
        return self.host_dir / POLICY_FILE


def build_webhook_config(
    settings: Settings,
    *,
    cluster: str,
    server_url: str,
    token: str | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    ca: Path | None = None,
    host_dir: PurePosixPath = DEFAULT_HOST_DIR,
) -> WebhookConfig:
    """Check the inputs against the settings and return what the formats render."""
    _check_server_url(server_url)
    credentials = _credentials(settings, cluster, token, client_cert, client_key)
    if ca is None:
        default_ca = tls_directory(settings.data_dir) / "ca.crt"
        ca = default_ca if default_ca.is_file() else None
    ca_pem = _read_pem_certificates(ca, "--ca") if ca is not None else None
    truncate = None
    if settings.ingest_max_body_bytes < APISERVER_MAX_BATCH_BYTES + BODY_MARGIN_BYTES:
        truncate = max(settings.ingest_max_body_bytes - BODY_MARGIN_BYTES, 1024)
    return WebhookConfig(
        cluster=cluster,
        server_url=server_url,
        credentials=credentials,
        ca_pem=ca_pem,
        host_dir=host_dir,
        batch_max_size=min(APISERVER_MAX_BATCH_EVENTS, settings.ingest_max_items),
        truncate_max_batch_bytes=truncate,
    )


def _check_server_url(server_url: str) -> None:
    parts = urlsplit(server_url)
    if parts.scheme == "http":
        raise WebhookConfigError(
            "refusing an http:// server URL: client-go, which kube-apiserver uses to read the"
            " webhook kubeconfig, sends the bearer token and the client certificate only to"
            " https:// servers, so every batch would arrive without credentials and be"
            " refused (401). Serve HTTPS (AUDIT_TIMELINE_TLS_CERTFILE, `audit-timeline tls"
            " init`, or an Ingress with TLS) and give the https:// URL."
        )
    if parts.scheme != "https" or not parts.hostname:
        raise WebhookConfigError("--server-url must be an https:// URL with a host name")
    if not parts.path.rstrip("/").endswith("/ingest"):
        raise WebhookConfigError(
            f"--server-url must end in /ingest (the webhook endpoint), not {parts.path or '/'!r}"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise WebhookConfigError("--server-url takes no user, password, query or fragment")


def _credentials(
    settings: Settings,
    cluster: str,
    token: str | None,
    client_cert: Path | None,
    client_key: Path | None,
) -> Credentials:
    # The bearer token names the cluster even when a client certificate is required as well
    # (TLS_CLIENT_CA guards the connection, INGEST_TOKENS map the sender to its cluster).
    cert = key = None
    if client_cert is not None or client_key is not None:
        if client_cert is None or client_key is None:
            raise WebhookConfigError("--client-cert and --client-key go together")
        if settings.tls_client_ca is None:
            raise WebhookConfigError(
                "a client certificate is asked for only when AUDIT_TIMELINE_TLS_CLIENT_CA is set"
            )
        cert = _read_pem_certificates(client_cert, "--client-cert")
        key = _read_file(client_key, "--client-key")
        if b"PRIVATE KEY-----" not in key:
            raise WebhookConfigError("--client-key holds no PEM private key")
    tokens = settings.ingest_token_map()
    if token is not None:
        owner = tokens.get(token)
        if tokens and owner is None:
            raise WebhookConfigError(
                "--token is not in AUDIT_TIMELINE_INGEST_TOKENS, so the server would refuse it"
            )
        if owner is not None and owner != cluster:
            raise WebhookConfigError(
                f"--token belongs to cluster {owner!r} in AUDIT_TIMELINE_INGEST_TOKENS, not"
                f" {cluster!r}: its events would be filed under {owner!r}"
            )
        return Credentials(token=token, client_cert_pem=cert, client_key_pem=key)
    mine = [t for t, name in tokens.items() if name == cluster]
    if not mine:
        raise WebhookConfigError(
            f"AUDIT_TIMELINE_INGEST_TOKENS has no token for cluster {cluster!r}: add"
            f" '<long random token>={cluster}' there (and restart), or pass --token"
        )
    return Credentials(token=mine[0], client_cert_pem=cert, client_key_pem=key)


def _read_file(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise WebhookConfigError(f"{option}: cannot read {path}: {exc.strerror}") from None


def _read_pem_certificates(path: Path, option: str) -> bytes:
    data = _read_file(path, option)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise WebhookConfigError(f"{option}: {path} holds no PEM certificate") from None
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(config: WebhookConfig) -> dict[str, Any]:
    """The file --audit-webhook-config-file names."""
    cluster: dict[str, Any] = {"server": config.server_url}
    if config.ca_pem is not None:
        cluster["certificate-authority-data"] = _b64(config.ca_pem)
    user: dict[str, Any] = {}
    user_name = f"kube-apiserver-{config.cluster}"
    creds = config.credentials
    if creds.token is not None:
        user["token"] = creds.token
    if creds.client_cert_pem is not None and creds.client_key_pem is not None:
        user["client-certificate-data"] = _b64(creds.client_cert_pem)
        user["client-key-data"] = _b64(creds.client_key_pem)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "audit-timeline", "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [
            {"name": "audit-timeline", "context": {"cluster": "audit-timeline", "user": user_name}}
        ],
        "current-context": "audit-timeline",
    }


def apiserver_flags(config: WebhookConfig) -> list[tuple[str, str]]:
    """kube-apiserver audit flags as (name, value), without the leading dashes."""
    flags = [
        ("audit-policy-file", str(config.policy_path)),
        ("audit-webhook-config-file", str(config.kubeconfig_path)),
        ("audit-webhook-version", "audit.k8s.io/v1"),
        ("audit-webhook-mode", "batch"),
        ("audit-webhook-batch-max-size", str(config.batch_max_size)),
        # 30 s by default: events would reach the timeline (and Follow live) that late.
        ("audit-webhook-batch-max-wait", "5s"),
        ("audit-webhook-initial-backoff", "10s"),
    ]
    if config.truncate_max_batch_bytes is not None:
        flags += [
            ("audit-webhook-truncate-enabled", "true"),
            ("audit-webhook-truncate-max-batch-size", str(config.truncate_max_batch_bytes)),
        ]
    return flags


def static_pod(config: WebhookConfig) -> dict[str, Any]:
    """The parts of /etc/kubernetes/manifests/kube-apiserver.yaml to add (a Pod fragment)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
        "spec": {
            "containers": [
                {
                    "name": "kube-apiserver",
                    "command": [f"--{name}={value}" for name, value in apiserver_flags(config)],
                    "volumeMounts": [
                        {"name": VOLUME_NAME, "mountPath": str(config.host_dir), "readOnly": True}
                    ],
                }
            ],
            "volumes": [
                {
                    "name": VOLUME_NAME,
                    "hostPath": {"path": str(config.host_dir), "type": "DirectoryOrCreate"},
                }
            ],
        },
    }


def kubeadm_cluster_configuration(config: WebhookConfig) -> dict[str, Any]:
    """A kubeadm ClusterConfiguration (v1beta4) carrying the flags and the hostPath mount."""
    return {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "apiServer": {
            "extraArgs": [{"name": n, "value": v} for n, v in apiserver_flags(config)],
            "extraVolumes": [
                {
                    "name": VOLUME_NAME,
                    "hostPath": str(config.host_dir),
                    "mountPath": str(config.host_dir),
                    "readOnly": True,
                    "pathType": "DirectoryOrCreate",
                }
            ],
        },
    }


def render(config: WebhookConfig, output: Format) -> str:
    """The text `webhook-config --format output` prints."""
    where = (
        f"# Put the webhook kubeconfig (`--format kubeconfig`) at {config.kubeconfig_path} and an"
        f" audit policy\n# (deploy/kubernetes/audit-policy-recommended.yaml) at"
        f" {config.policy_path} on every control-plane node.\n"
    )
    if output == "kubeconfig":
        head = (
            f"# kube-apiserver audit webhook for cluster {config.cluster!r}:"
            f" save as {config.kubeconfig_path} (mode 0600).\n"
        )
        return head + _dump(kubeconfig(config))
    if output == "flags":
        return "".join(f"--{name}={value}\n" for name, value in apiserver_flags(config))
    if output == "static-pod":
        head = "# Add to /etc/kubernetes/manifests/kube-apiserver.yaml (merge, do not replace).\n"
        return head + where + _dump(static_pod(config))
    return (
        "# kubeadm: merge into your ClusterConfiguration.\n"
        + where
        + _dump(kubeadm_cluster_configuration(config))
    )


def _dump(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
