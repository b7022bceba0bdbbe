"""docker-compose's es-loader (app.demo_elasticsearch) fills Elasticsearch with documents the
poller reads: run against the real test Elasticsearch, then poll."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from app.demo_elasticsearch import load, main
from tests.conftest import query_all
from tests.poller.helpers import poll_once, poller_settings

pytestmark = pytest.mark.es


@pytest.mark.asyncio(loop_scope="session")
async def test_loaded_sample_is_polled(es_url: str, database_url: str, tmp_path: Path) -> None:
    index, count = load(es_url, cluster="compose-demo", count=120)
    assert index.startswith("tigera_secure_ee_audit_kube.compose-demo.fluentd-")
    # Loading again adds nothing: the documents' ids are their auditIDs.
    load(es_url, cluster="compose-demo", count=120)

    result = await poll_once(poller_settings(database_url, tmp_path, es_url))

    assert (result.read, result.stored, result.quarantined, result.skipped) == (count, count, 0, 0)
    rows = query_all(database_url, "SELECT cluster, source, verb FROM audit_event")
    assert Counter(r[0] for r in rows) == {"compose-demo": count}
    assert {r[1] for r in rows} == {"elasticsearch"}
    assert {"create", "patch", "get"} <= {r[2] for r in rows}


def test_command_line(es_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", es_url, "--count", "5", "--wait", "10"]) == 0
    assert "es-loader: 5 sample audit documents in tigera_secure_ee_audit_kube.demo." in (
        capsys.readouterr().out
    )
