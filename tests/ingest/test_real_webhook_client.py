"""kube-apiserver's own audit webhook backend (Go, k8s.io/apiserver webhook + buffered, built
from tests/webhook_client/) against `audit-timeline serve` as a user runs it.

Over HTTPS with the self-signed CA of `tls init`, a bearer token and the kubeconfig that
`webhook-config` prints (the README's path), thousands of events arrive once each and
JSON-equal; a PostgreSQL outage mid-stream loses and doubles nothing; over plain HTTP the client
sends no token, and the server says why.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.audit.normalize import reconstruct_event
from app.ingest.auth import NO_CREDENTIALS_OVER_HTTP
from app.migrate import upgrade_to_head
from app.redaction_key import make_redactor
from tests.builders import audit_event, secret_event
from tests.conftest import TEST_REDACTION_KEY, make_settings, query_all
from tests.go_webhook_client import finish_client, start_client, write_kubeconfig
from tests.ingest.test_tls_client_certs import free_port
from tests.pg import TestPostgres

pytestmark = pytest.mark.webhook_client

TOKEN = "webhook-client-token"
CLUSTER = "kind-east"
BATCH = 400  # kube-apiserver's --audit-webhook-batch-max-size default, as the client uses


class Server:
    """`python -m app.cli serve` in a subprocess, its log in a file (JSON lines)."""

    def __init__(self, database_url: str, data_dir: Path, *, tls: bool) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log = data_dir / "serve.log"
        self.env = {
            **os.environ,
            "AUDIT_TIMELINE_DATABASE_URL": database_url,
            "AUDIT_TIMELINE_DATA_DIR": str(data_dir),
            "AUDIT_TIMELINE_REDACTION_KEY": TEST_REDACTION_KEY,
            "AUDIT_TIMELINE_PORT": str(self.port),
            "AUDIT_TIMELINE_INGEST_TOKENS": f"{TOKEN}={CLUSTER}",
            "AUDIT_TIMELINE_INGEST_RETRY_AFTER_SECONDS": "1",
            "AUDIT_TIMELINE_LOG_FORMAT": "json",
            # The once-a-minute warnings asserted here are per worker process (README WORKERS).
            "AUDIT_TIMELINE_WORKERS": "1",
        }
        self.scheme = "https" if tls else "http"
        self.args = ["serve", "--tls-self-signed", "--tls-host", "127.0.0.1"] if tls else ["serve"]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    def kubeconfig(self, path: Path) -> Path:
        """The webhook kubeconfig a user writes for this server (the CA only for https)."""
        ca = self.ca if self.scheme == "https" else None
        return write_kubeconfig(path, server=f"{self.url}/ingest", token=TOKEN, ca=ca)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.1)
        pytest.fail(f"serve did not listen within 60 s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def metric(self, name: str, **labels: str) -> float:
        verify: Any = ssl.create_default_context(cafile=self.ca) if self.scheme == "https" else True
        text = httpx.get(f"{self.url}/metrics", verify=verify, timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0


@pytest.fixture
def client_database_url(stoppable_postgres: TestPostgres) -> str:
    url = stoppable_postgres.create_database("audit_timeline_webhook_client")
    upgrade_to_head(url)
    return url


@pytest.fixture
def tls_server(client_database_url: str, tmp_path: Path) -> Iterator[Server]:
    server = Server(client_database_url, tmp_path / "data", tls=True)
    server.data_dir.mkdir()
    # The README's first step: create the CA and server certificate, print the CA's path.
    init = server.cli("tls", "init", "--host", "127.0.0.1")
    assert init.returncode == 0, init.stderr
    assert f"certificate-authority: {server.ca.resolve()}" in init.stdout
    for key in ("ca.key", "server.key"):
        assert (server.data_dir / "tls" / key).stat().st_mode & 0o777 == 0o600
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert "CA reused" in server.log.read_text()  # serve took the CA of `tls init`


@pytest.fixture
def http_server(client_database_url: str, tmp_path: Path) -> Iterator[Server]:
    server = Server(client_database_url, tmp_path / "data", tls=False)
    server.data_dir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def realistic_stream(requests: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Events of `requests` API requests, each as RequestReceived + ResponseComplete: Secrets
    with values, impersonated JSON patches, deletes, refusals, ConfigMap updates, creates.
    Also returns the secret values that must never reach the database."""
    events: list[dict[str, Any]] = []
    secrets: list[str] = []
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    for i in range(requests):
        received = start + timedelta(milliseconds=37 * i, microseconds=i % 1000)
        done = received + timedelta(microseconds=2500 + i % 700)
        audit_id = str(uuid.uuid4())
        kind = i % 6
        if kind == 0:
            value = f"s3cr3t-{i}-{uuid.uuid4().hex}"
            secrets.append(value)
            encoded = base64.b64encode(value.encode()).decode()
            event = secret_event({"password": encoded})
            event["requestObject"]["stringData"] = {"token": f"{value}-plain"}
            secrets.append(f"{value}-plain")
        elif kind == 1:
            event = audit_event(
                verb="patch",
                requestURI="/apis/networking.k8s.io/v1/namespaces/payments/networkpolicies/allow-web",
                user={
                    "username": "system:serviceaccount:ci:deployer",
                    "groups": ["system:serviceaccounts", "system:authenticated"],
                    "uid": "0c7ce1f4-0000-4000-8000-000000000001",
                },
                impersonatedUser={"username": "alice@example.com", "groups": ["dev"]},
                requestObject=[
                    {"op": "replace", "path": "/spec/podSelector/matchLabels/app", "value": f"w{i}"}
                ],
                responseObject={
                    "kind": "NetworkPolicy",
                    "apiVersion": "networking.k8s.io/v1",
                    "metadata": {"name": "allow-web", "namespace": "payments"},
                    "spec": {"podSelector": {"matchLabels": {"app": f"w{i}"}}},
                },
                responseStatus={"metadata": {}, "code": 200},
            )
        elif kind == 2:
            event = audit_event(
                verb="delete",
                requestURI=f"/api/v1/namespaces/shop/pods/web-{i}",
                objectRef={
                    "resource": "pods",
                    "namespace": "shop",
                    "name": f"web-{i}",
                    "apiVersion": "v1",
                },
                responseStatus={"metadata": {}, "status": "Success", "code": 200},
            )
        elif kind == 3:
            event = audit_event(
                level="Metadata",
                verb="update",
                user={"username": "mallory@example.com", "groups": ["system:authenticated"]},
                responseStatus={
                    "metadata": {},
                    "status": "Failure",
                    "message": 'networkpolicies.networking.k8s.io "allow-web" is forbidden',
                    "reason": "Forbidden",
                    "code": 403,
                },
                annotations={
                    "authorization.k8s.io/decision": "forbid",
                    "authorization.k8s.io/reason": "",
                },
            )
        elif kind == 4:
            config = {
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "metadata": {
                    "name": "settings",
                    "namespace": "shop",
                    "annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"mode":"x"}}'
                    },
                },
                "data": {"mode": f"m{i}", "note": "ünïcode ✓ <b>&</b>"},
            }
            event = audit_event(
                verb="update",
                requestURI="/api/v1/namespaces/shop/configmaps/settings",
                objectRef={
                    "resource": "configmaps",
                    "namespace": "shop",
                    "name": "settings",
                    "apiVersion": "v1",
                },
                requestObject=config,
                responseObject=config,
                responseStatus={"metadata": {}, "code": 200},
            )
        else:
            event = audit_event(
                requestObject={
                    "kind": "NetworkPolicy",
                    "apiVersion": "networking.k8s.io/v1",
                    "metadata": {"name": f"np-{i}", "namespace": "payments"},
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
                },
            )
        event.update(
            auditID=audit_id,
            requestReceivedTimestamp=_stamp(received),
            stageTimestamp=_stamp(done),
        )
        # RequestReceived: emitted before the body is read, with no response yet.
        first = {
            k: v
            for k, v in event.items()
            if k not in ("responseStatus", "requestObject", "responseObject", "annotations")
        }
        first.update(stage="RequestReceived", stageTimestamp=_stamp(received))
        events += [first, event]
    return events, secrets


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def assert_stored_once_and_equal(url: str, events: list[dict[str, Any]], data_dir: Path) -> None:
    """Each (cluster, auditID, stage) stored exactly once, JSON-equal to what the client sent,
    with the app's own redaction applied."""
    redactor = make_redactor(make_settings(url, data_dir, redaction_key=TEST_REDACTION_KEY))
    expected: dict[tuple[str, str], str] = {}
    for event in events:
        # The webhook backend sends the items of its EventList without kind and apiVersion
        # (the API server's events carry no type meta; the list says what they are).
        redacted = {k: v for k, v in event.items() if k not in ("kind", "apiVersion")}
        redacted = json.loads(json.dumps(redacted))
        redactor.redact_event(redacted)
        expected[(event["auditID"], event["stage"])] = json.dumps(redacted, sort_keys=True)
    rows = query_all(
        url,
        "SELECT cluster, audit_id, stage, raw, request_object, response_object FROM audit_event",
    )
    keys = [(cluster, audit_id, stage) for cluster, audit_id, stage, *_ in rows]
    assert len(keys) == len(set(keys)), "an event was stored twice"
    assert {k[1:] for k in keys} == set(expected), "events missing or unexpected"
    assert {k[0] for k in keys} == {CLUSTER}
    for _, audit_id, stage, raw, request_object, response_object in rows:
        stored = json.dumps(reconstruct_event(raw, request_object, response_object), sort_keys=True)
        assert stored == expected[(audit_id, stage)]
    assert query_all(url, "SELECT count(*) FROM quarantined_item") == [(0,)]


def test_events_over_https_with_a_token_arrive_once_and_json_equal(
    tls_server: Server, client_database_url: str, tmp_path: Path
) -> None:
    events, secrets = realistic_stream(3000)
    # The kubeconfig a user gets from the README: `webhook-config` (CA from DATA_DIR/tls/).
    generated = tls_server.cli(
        "webhook-config", "--cluster", CLUSTER, "--server-url", f"{tls_server.url}/ingest"
    )
    assert generated.returncode == 0, generated.stderr
    kubeconfig = tmp_path / "webhook.kubeconfig"
    kubeconfig.write_text(generated.stdout)
    started = time.monotonic()
    run = finish_client(start_client(kubeconfig, write_events(tmp_path / "events.jsonl", events)))
    elapsed = time.monotonic() - started

    summary = run.summary
    assert summary["events_read"] == len(events) == 6000
    assert summary["events_ok"] == len(events), run.stderr[-2000:]
    assert summary["events_failed"] == summary["events_dropped_by_buffer"] == 0
    # Batches of at most 400; the last ones are cut short when the backend shuts down.
    assert summary["batches"] == summary["batches_ok"] >= len(events) // BATCH
    assert summary["largest_batch"] == BATCH
    assert_stored_once_and_equal(client_database_url, events, tls_server.data_dir)

    dump = "\n".join(
        str(row) for row in query_all(client_database_url, "SELECT * FROM audit_event")
    )
    leaked = [s for s in secrets if s in dump or base64.b64encode(s.encode()).decode() in dump]
    assert leaked == []
    assert "[redacted:hmac-sha256:" in dump
    assert tls_server.metric("audit_timeline_ingest_rejected_total", reason="no_credentials") == 0
    print(  # noqa: T201
        f"\nwebhook client over https: {len(events)} events in {summary['batches']:.0f} batches,"
        f" {summary['seconds']:.1f} s client time, {elapsed:.1f} s wall"
    )


def test_a_database_outage_mid_stream_loses_and_doubles_nothing(
    tls_server: Server,
    client_database_url: str,
    stoppable_postgres: TestPostgres,
    tmp_path: Path,
) -> None:
    events, _ = realistic_stream(2000)
    kubeconfig = tls_server.kubeconfig(tmp_path / "webhook.kubeconfig")
    # 1,000 events/s: a batch of 400 every 0.4 s for 4 s. The retry backoff starts at 1 s
    # instead of kube-apiserver's 10 s to keep the test short (the server's Retry-After is 1 s
    # too); batching, buffer and throttle are kube-apiserver's defaults.
    client = start_client(
        kubeconfig,
        write_events(tmp_path / "events.jsonl", events),
        rate=1000,
        initial_backoff="1s",
    )
    deadline = time.monotonic() + 60
    while query_all(client_database_url, "SELECT count(*) FROM audit_event")[0][0] == 0:
        assert time.monotonic() < deadline, "no batch arrived"
        assert client.poll() is None, "the client finished before the outage"
        time.sleep(0.05)
    stored_before = query_all(client_database_url, "SELECT count(*) FROM audit_event")[0][0]
    stoppable_postgres.stop()
    try:
        time.sleep(4)
    finally:
        stoppable_postgres.start()
    run = finish_client(client)

    refused = tls_server.metric("audit_timeline_ingest_requests_total", code="503")
    assert refused > 0, "no batch met the outage"
    assert stored_before < len(events)
    assert run.summary["events_ok"] == len(events), run.stderr[-2000:]
    assert run.summary["events_failed"] == run.summary["events_dropped_by_buffer"] == 0
    assert_stored_once_and_equal(client_database_url, events, tls_server.data_dir)
    print(  # noqa: T201
        f"\nwebhook client, 4 s outage: {len(events)} events in {run.summary['batches']:.0f}"
        f" batches, {stored_before} stored before it, {refused:.0f} answers 503, 0 lost,"
        f" 0 doubled, {run.summary['seconds']:.1f} s"
    )


def test_over_http_the_client_sends_no_token_and_the_server_says_why(
    http_server: Server, client_database_url: str, tmp_path: Path
) -> None:
    events, _ = realistic_stream(50)
    kubeconfig = http_server.kubeconfig(tmp_path / "webhook.kubeconfig")
    # Backoff from 0.2 s instead of 10 s: the client gives up after its 5 tries in ~2 s.
    run = finish_client(
        start_client(
            kubeconfig, write_events(tmp_path / "events.jsonl", events), initial_backoff="200ms"
        )  # fmt: skip
    )

    # What a user sees today: the API server drops every event...
    assert run.summary["events_failed"] == len(events)
    assert query_all(client_database_url, "SELECT count(*) FROM audit_event") == [(0,)]
    # ...and the client's error carries our explanation (kube-apiserver logs it).
    assert NO_CREDENTIALS_OVER_HTTP in run.stderr
    rejected = http_server.metric("audit_timeline_ingest_rejected_total", reason="no_credentials")
    assert rejected >= 2  # the client retried
    warnings = [
        r for r in http_server.log_records() if r["event"] == "ingest.webhook_sent_no_credentials"
    ]
    assert len(warnings) == 1, "one warning, not one per retry"
    assert warnings[0]["level"] == "WARNING"
    assert warnings[0]["explanation"].startswith(NO_CREDENTIALS_OVER_HTTP)
    assert warnings[0]["scheme"] == "http"
    print(  # noqa: T201
        f"\nwebhook client over http: {len(events)} events dropped by the client after"
        f" {rejected:.0f} tries answered 401, 1 warning logged"
    )
