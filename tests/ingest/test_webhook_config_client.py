"""`audit-timeline webhook-config` output, unedited, as kube-apiserver's own audit webhook
backend (the Go client of tests/webhook_client/) reads it: every event arrives, once."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from tests.go_webhook_client import finish_client, start_client
from tests.ingest.test_real_webhook_client import (  # noqa: F401 - fixtures used by name
    CLUSTER,
    Server,
    assert_stored_once_and_equal,
    client_database_url,
    realistic_stream,
    tls_server,
    write_events,
)

pytestmark = pytest.mark.webhook_client


def test_the_webhook_backend_sends_with_the_generated_kubeconfig(
    tls_server: Server,  # noqa: F811 - the fixture imported above
    client_database_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    made = tls_server.cli(
        "webhook-config", "--cluster", CLUSTER, "--server-url", f"{tls_server.url}/ingest"
    )
    assert made.returncode == 0, made.stderr
    cluster = yaml.safe_load(made.stdout)["clusters"][0]["cluster"]
    # No --ca: the CA of `audit-timeline tls init` (DATA_DIR/tls/ca.crt) is embedded.
    assert base64.b64decode(cluster["certificate-authority-data"]) == tls_server.ca.read_bytes()
    kubeconfig = tmp_path / "webhook-kubeconfig.yaml"
    kubeconfig.write_text(made.stdout)

    events, _ = realistic_stream(150)
    run = finish_client(start_client(kubeconfig, write_events(tmp_path / "events.jsonl", events)))

    assert run.summary["events_ok"] == len(events), run.stderr[-2000:]
    assert run.summary["events_failed"] == 0
    assert_stored_once_and_equal(client_database_url, events, tls_server.data_dir)
