"""Refused ingest requests: a webhook sender (kube-apiserver, any Go client) that sent no
credentials is told why in the 401 body (a Kubernetes Status, so client-go logs the message)
and in one rate-limited warning; /metrics counts refusals by reason."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.ingest.auth import NO_CREDENTIALS_OVER_HTTP, is_webhook_sender
from app.main import create_app
from tests.builders import audit_event, event_list
from tests.conftest import make_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

KUBE_APISERVER = "kube-apiserver/v1.31.2 (linux/amd64) kubernetes/5864a46"
EVENT_NAME = "ingest.webhook_sent_no_credentials"


@pytest_asyncio.fixture
async def token_app(database_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(database_url, tmp_path, ingest_tokens="good=c1"))
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI, scheme: str = "http") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://localhost"
    )


async def rejected(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "audit_timeline_ingest_rejected_total"
    }


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (KUBE_APISERVER, True),
        ("Go-http-client/1.1", True),
        ("Go-http-client/2.0", True),
        ("my-operator/v0.3.0 (linux/arm64) kubernetes/abcdef0", True),
        ("curl/8.5.0", False),
        ("fluent-bit/3.1", False),
        ("", False),
    ],
)
async def test_webhook_senders_are_recognised_by_user_agent(agent: str, expected: bool) -> None:
    assert is_webhook_sender(agent) is expected


async def test_a_go_sender_without_credentials_over_http_is_told_why_once(
    token_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    body = event_list([audit_event()])
    async with client_for(token_app) as client:
        before = await rejected(client)
        assert before["no_credentials"] == 0  # exported before the first refusal
        with caplog.at_level(logging.WARNING, logger="app.ingest.auth"):
            answers = [
                await client.post("/ingest", json=body, headers={"user-agent": agent})
                for agent in (KUBE_APISERVER, "Go-http-client/1.1", KUBE_APISERVER)
            ]
        after = await rejected(client)
    for answer in answers:
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        payload = answer.json()
        assert payload["error"].startswith(NO_CREDENTIALS_OVER_HTTP)
        assert "--tls-self-signed" in payload["error"]
        # A Kubernetes Status: client-go reports `message` instead of a generic 401 text.
        assert payload["kind"] == "Status"
        assert payload["status"] == "Failure"
        assert payload["reason"] == "Unauthorized"
        assert payload["code"] == 401
        assert payload["message"] == payload["error"]
    warnings = [r for r in caplog.records if r.getMessage() == EVENT_NAME]
    assert len(warnings) == 1, "a retrying API server must not flood the log"
    assert warnings[0].levelno == logging.WARNING
    assert warnings[0].explanation.startswith(NO_CREDENTIALS_OVER_HTTP)  # type: ignore[attr-defined]
    assert warnings[0].scheme == "http"  # type: ignore[attr-defined]
    assert after["no_credentials"] == 3


async def test_a_go_sender_without_a_token_over_https_is_pointed_at_the_kubeconfig(
    token_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(token_app, "https") as client:
        with caplog.at_level(logging.WARNING, logger="app.ingest.auth"):
            answer = await client.post(
                "/ingest", json=event_list([]), headers={"user-agent": KUBE_APISERVER}
            )
    assert answer.status_code == 401
    assert "give the webhook kubeconfig's user a token" in answer.json()["message"]
    assert NO_CREDENTIALS_OVER_HTTP not in answer.text
    assert [r.getMessage() for r in caplog.records] == [EVENT_NAME]


async def test_other_refusals_keep_their_messages_and_are_counted_by_reason(
    token_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    body = event_list([audit_event()])
    async with client_for(token_app) as client:
        with caplog.at_level(logging.WARNING, logger="app.ingest.auth"):
            curl = await client.post("/ingest", json=body, headers={"user-agent": "curl/8.5.0"})
            basic = await client.post("/ingest", json=body, headers={"authorization": "Basic eA=="})
            unknown = await client.post(
                "/ingest", json=body, headers={"authorization": "Bearer nope"}
            )
            other = await client.post(
                "/ingest?cluster=c2", json=body, headers={"authorization": "Bearer good"}
            )
            bad = await client.post(
                "/ingest?cluster=../x", json=body, headers={"authorization": "Bearer good"}
            )
            accepted = await client.post(
                "/ingest", json=body, headers={"authorization": "Bearer good"}
            )
        counts = await rejected(client)
    assert curl.status_code == 401
    assert curl.json()["error"] == "missing bearer token (Authorization: Bearer <token>)"
    assert basic.status_code == 401
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "unknown bearer token"
    assert other.status_code == 403
    assert other.json()["reason"] == "Forbidden"
    assert bad.status_code == 400
    assert accepted.status_code == 200
    assert counts == {
        "no_credentials": 2,
        "unknown_token": 1,
        "tokens_not_configured": 0,
        "invalid_cluster": 1,
        "cluster_not_allowed": 1,
    }
    assert not [r for r in caplog.records if r.getMessage() == EVENT_NAME]


async def test_off_loopback_without_tokens_is_counted(database_url: str, tmp_path: Path) -> None:
    app = create_app(make_settings(database_url, tmp_path, host="0.0.0.0"))
    async with app.router.lifespan_context(app), client_for(app) as client:
        answer = await client.post("/ingest", json=event_list([audit_event()]))
        counts = await rejected(client)
    assert answer.status_code == 401
    assert "AUDIT_TIMELINE_INGEST_TOKENS" in answer.json()["message"]
    assert counts["tokens_not_configured"] == 1
