"""A quiet, honest start: what `serve` prints, and the embedded PostgreSQL stopping with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.audit.queries import StoreResult
from app.settings import Settings
from app.startup import access_sentence, demo_summary, listen_urls

CLI = str(Path(sys.executable).parent / "audit-timeline")


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_wildcard_bind_prints_real_urls() -> None:
    urls = listen_urls(settings(host="0.0.0.0", port=8123))
    assert urls[0] == "http://127.0.0.1:8123/"
    assert not any("0.0.0.0" in u for u in urls)
    assert listen_urls(settings(host="10.1.2.3", port=80)) == ["http://10.1.2.3:80/"]
    assert listen_urls(settings(host="::1")) == ["http://[::1]:8000/"]


def test_https_urls_when_tls_is_on(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    urls = listen_urls(settings(host="127.0.0.1", tls_certfile=tmp_path / "c.pem"))
    assert urls == ["https://127.0.0.1:8000/"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "Only this machine can connect, so nothing asks for a token."),
        ({"ingest_tokens": "t=c"}, "Only this machine can connect; the configured tokens"),
        (
            {"host": "0.0.0.0"},
            "Reachable from other machines: /healthz, /readyz, /metrics and /docs are open to"
            " anyone; POST /ingest refuses everything until AUDIT_TIMELINE_INGEST_TOKENS is set;"
            " the UI and API answer 401 to everyone until AUDIT_TIMELINE_ACCESS_TOKENS or"
            " AUDIT_TIMELINE_AUTH_PROXY_ADDRESSES is set.",
        ),
        (
            {
                "host": "0.0.0.0",
                "ingest_tokens": "t=c",
                "access_tokens": "v=viewer",
                "auth_proxy_addresses": "10.0.0.5",
            },
            "POST /ingest takes the INGEST_TOKENS bearer tokens; the UI and API need an"
            " ACCESS_TOKENS bearer token or a sign-in through the auth proxy.",
        ),
    ],
)
def test_one_sentence_says_what_is_open(values: dict[str, object], expected: str) -> None:
    sentence = access_sentence(settings(**values))
    assert expected in sentence
    # One sentence.
    assert sentence.endswith(".")
    assert ". " not in sentence


def test_demo_summary() -> None:
    assert demo_summary(StoreResult(600, 0, 0), files=0) == (
        "demo: 600 events stored from generated sample events"
    )
    line = demo_summary(StoreResult(940, 2, 9), files=7)
    assert line.startswith("demo: 940 events stored from 7 real sample files, 2 already there;")
    assert "9 quarantined, as expected" in line


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: its 0700 parents (reset by any concurrent pytest) keep the
    # embedded server's own user out. tests/pg.py does the same.
    with tempfile.TemporaryDirectory(prefix="at-start-") as tmp:
        yield Path(tmp) / "data"


def test_serve_demo_is_quiet_and_stops_its_embedded_postgres(
    tmp_path: Path, data_dir: Path
) -> None:
    """The real command on a fresh DATA_DIR: generated demo data, Ctrl+C, PostgreSQL gone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_TIMELINE_")}
    empty = tmp_path / "no-fixtures"
    empty.mkdir()
    env.update(
        AUDIT_TIMELINE_DATA_DIR=str(data_dir),
        AUDIT_TIMELINE_DEMO_FIXTURES_DIR=str(empty),
        AUDIT_TIMELINE_REDACTION_KEY="startup-test-key",
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [CLI, "serve", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Uvicorn running" in line:
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "demo: 600 events stored from generated sample events\n" in output
    assert f"audit-timeline: open http://127.0.0.1:{port}/\n" in output
    assert "nothing asks for a token" in output
    for noise in ("WARNING", "ERROR", "alembic", "Traceback", "Editable"):
        assert noise not in output, output
    where = data_dir / "postgres"
    assert output.endswith(
        f"audit-timeline: stopped the embedded PostgreSQL (its data stays in {where})\n"
    ), output
    assert not (where / "postmaster.pid").exists()


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["poll", "--once"]])
def test_replica_without_database_url_refuses_to_start(tmp_path: Path, command: list[str]) -> None:
    """As the image, the chart and deploy/kubernetes run it: no throw-away embedded database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_TIMELINE_")}
    env.update(
        AUDIT_TIMELINE_REQUIRE_DATABASE_URL="true",
        AUDIT_TIMELINE_DATA_DIR=str(tmp_path / "data"),
        AUDIT_TIMELINE_ES_URL="http://127.0.0.1:9",
    )
    result = subprocess.run(
        [CLI, *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "AUDIT_TIMELINE_DATABASE_URL is not set" in result.stderr
    assert "refusing to start a throw-away embedded PostgreSQL" in result.stderr
    assert not (tmp_path / "data" / "postgres").exists()
