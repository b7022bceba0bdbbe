"""Dockerfile, .dockerignore and docker-compose.yml, checked without a Docker engine: parsed,
cross-checked against the project (paths, settings, the tested Elasticsearch version), and the
image's HEALTHCHECK command run against a real HTTP server. `docker compose config` runs too
when a compose binary is installed.
"""

from __future__ import annotations

import http.server
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kube import PROJECT, unknown_settings

pytestmark = pytest.mark.deploy

COMPOSE = PROJECT / "docker-compose.yml"


# --- Dockerfile ------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", (PROJECT / "Dockerfile").read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def build_args() -> dict[str, str]:
    return dict(
        rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest
    )


def test_base_images_are_pinned_releases() -> None:
    args = build_args()
    images = [args[name] for name in ("PYTHON_IMAGE", "NODE_IMAGE")]
    for image in images:
        assert re.fullmatch(r"[a-z]+:\d+\.\d+\.\d+-[a-z-]+", image), image
    froms = [rest.split()[0] for word, rest in instructions() if word == "FROM"]
    assert all(f in ("${PYTHON_IMAGE}", "${NODE_IMAGE}") for f in froms)
    # The Python of the image is the one the project is set up and tested with (3.11).
    assert args["PYTHON_IMAGE"].startswith("python:3.11.")


def test_multi_stage_final_image_has_no_build_tools_and_runs_as_non_root() -> None:
    all_stages = stages()
    assert len(all_stages) >= 3
    final = all_stages[-1]
    final_text = " ".join(rest for _, rest in final)
    assert "AS" not in final[0][1].split()  # the last stage is the image
    for tool in ("npm", "apt-get install", "gcc", "build-essential", "pip install"):
        assert tool not in final_text, tool
    assert "uninstall --quiet --yes pip" in final_text
    [user] = [rest for word, rest in final if word == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) >= 1000
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "AUDIT_TIMELINE_REQUIRE_DATABASE_URL=true" in env
    assert "AUDIT_TIMELINE_HOST=0.0.0.0" in env
    assert not unknown_settings((PROJECT / "Dockerfile").read_text())
    [cmd] = [rest for word, rest in final if word == "CMD"]
    assert yaml.safe_load(cmd) == ["audit-timeline", "serve"]
    # The assets stage runs the project's own vendoring script; the image gets its output.
    assets = all_stages[0]
    assert ("RUN", "scripts/vendor-assets") in assets
    assert ("COPY", "--from=assets /src/static/vendor ./static/vendor") in final
    build_stage = " ".join(rest for _, rest in all_stages[1])
    assert "-c requirements.lock" in build_stage


def dockerignore() -> list[str]:
    lines = (PROJECT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: `*` and `?` stop at '/', `**` does not."""
    out = ""
    for token in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
        if token in ("**", "**/"):
            out += ".*" if token == "**" else "(?:.*/)?"
        elif token == "*":
            out += "[^/]*"
        elif token == "?":
            out += "[^/]"
        else:
            out += re.escape(token)
    return re.compile(out)


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also covers what is below it."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        regex = pattern_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not pattern.startswith("!")
    return ignored


def test_dockerignore_keeps_state_and_secrets_out_and_sources_in() -> None:
    patterns = dockerignore()
    for path in (
        ".venv/bin/python",
        "node_modules/htmx.org/package.json",
        ".git/config",
        ".audit-timeline/redaction.key",
        ".audit-timeline/postgres/PG_VERSION",
        ".env",
        ".env.production",
        ".cache/bin/helm",
        "static/vendor/htmx.min.js",
        "app/__pycache__/cli.cpython-311.pyc",
        "tls/server.key",
        "certs/ca.pem",
    ):
        assert is_ignored(path, patterns), path
    # Every file the Dockerfile copies from the context is in the context.
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = shlex.split(rest)
        for source in sources:
            assert (PROJECT / source).exists(), source
            assert not is_ignored(source, patterns), source
    assert not is_ignored("app/cli.py", patterns)
    assert not is_ignored(".env.example", patterns)
    assert not is_ignored("migrations/env.py", patterns)


class Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.fixture
def healthz_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_command_probes_healthz(healthz_server: int) -> None:
    [healthcheck] = [rest for word, rest in instructions() if word == "HEALTHCHECK"]
    command = yaml.safe_load(healthcheck.split("CMD", 1)[1].strip())
    assert command[:2] == ["python", "-c"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_TIMELINE_")}
    run = [sys.executable, "-c", command[2]]
    ok = subprocess.run(
        run, env={**env, "AUDIT_TIMELINE_PORT": str(healthz_server)}, timeout=30, check=False
    )
    assert ok.returncode == 0
    # Nobody listening: the check fails (a closed port stands for a dead server).
    with socket_closed_port() as port:
        down = subprocess.run(
            run,
            env={**env, "AUDIT_TIMELINE_PORT": str(port)},
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert down.returncode != 0


class socket_closed_port:  # noqa: N801 - used as a context manager
    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        return None


# --- docker-compose.yml ----------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services(profile: str | None = None) -> dict[str, dict[str, Any]]:
    """The services `docker compose [--profile profile] up` starts."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if not service.get("profiles") or profile in service["profiles"]
    }


def test_default_stack_is_app_and_postgres() -> None:
    default = services()
    assert set(default) == {"app", "db"}
    app, db = default["app"], default["db"]
    url = app["environment"]["AUDIT_TIMELINE_DATABASE_URL"]
    expected = "postgresql://{POSTGRES_USER}:{POSTGRES_PASSWORD}@db:5432/{POSTGRES_DB}"
    assert url == expected.format(**db["environment"])
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert re.fullmatch(r"postgres:\d+\.\d+-\w+", db["image"])
    # Secrets come from .env, and compose refuses to start without them.
    for name in ("INGEST_TOKENS", "REDACTION_KEY"):
        value = app["environment"][f"AUDIT_TIMELINE_{name}"]
        assert value.startswith(f"${{AUDIT_TIMELINE_{name}:?")
        assert f"AUDIT_TIMELINE_{name}=" in (PROJECT / ".env.example").read_text()
    assert app["read_only"] is True
    assert app["cap_drop"] == ["ALL"]


def test_elasticsearch_profile_is_the_tested_version_wired_and_filled() -> None:
    stack = services("elasticsearch")
    pom = (PROJECT / "tests" / "es_launcher" / "pom.xml").read_text()
    tested = re.search(r"<es.version>([\d.]+)</es.version>", pom)
    assert tested
    es = stack["elasticsearch"]
    assert es["image"].endswith(f"/elasticsearch:{tested.group(1)}")
    es_url = f"http://elasticsearch:{es['ports'][0].rsplit(':', 1)[1]}"
    poller = stack["poller"]
    assert poller["command"] == ["audit-timeline", "poll"]
    assert poller["environment"]["AUDIT_TIMELINE_ES_URL"] == es_url
    # The merged app environment: the poller writes to the same database.
    assert (
        poller["environment"]["AUDIT_TIMELINE_DATABASE_URL"]
        == (stack["app"]["environment"]["AUDIT_TIMELINE_DATABASE_URL"])
    )
    loader = stack["es-loader"]
    assert loader["command"][:3] == ["python", "-m", "app.demo_elasticsearch"]
    assert loader["command"][loader["command"].index("--url") + 1] == es_url
    assert (PROJECT / "app" / "demo_elasticsearch.py").is_file()
    for name in ("poller", "es-loader"):
        assert stack[name]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
        assert stack[name]["healthcheck"] == {"disable": True}  # they serve no /healthz


def test_proxy_profile_is_the_only_trusted_sender_of_the_user_header() -> None:
    stack = services("proxy")
    proxy = stack["oauth2-proxy"]
    address = ipaddress.ip_address(proxy["networks"]["audit"]["ipv4_address"])
    app_env = stack["app"]["environment"]
    assert [ipaddress.ip_address(app_env["AUDIT_TIMELINE_AUTH_PROXY_ADDRESSES"])] == [address]
    [pool] = compose()["networks"]["audit"]["ipam"]["config"]
    assert address in ipaddress.ip_network(pool["subnet"])
    # Docker hands out dynamic addresses only from ip_range: nobody else can get the proxy's.
    assert address not in ipaddress.ip_network(pool["ip_range"])
    assert proxy["environment"]["OAUTH2_PROXY_UPSTREAMS"] == "http://app:8000/"
    assert proxy["environment"]["OAUTH2_PROXY_PASS_USER_HEADERS"] == "true"
    assert proxy["ports"] == ["4180:4180"]


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) if installed, else Debian's `docker-compose` (scripts/setup)."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_TIMELINE_")}
    base = [*command, "--project-directory", str(PROJECT), "-f", str(COMPOSE)]

    def config(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args, "config"],
            env={**env, **extra},
            cwd=tmp_path,  # no .env of the developer's
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    secrets = {"AUDIT_TIMELINE_INGEST_TOKENS": "t=c", "AUDIT_TIMELINE_REDACTION_KEY": "k"}
    everything = config("--profile", "elasticsearch", "--profile", "proxy", **secrets)
    assert everything.returncode == 0, everything.stderr
    resolved = yaml.safe_load(everything.stdout)
    assert set(resolved["services"]) == {
        "app",
        "db",
        "elasticsearch",
        "poller",
        "es-loader",
        "oauth2-proxy",
    }
    assert resolved["services"]["poller"]["environment"]["AUDIT_TIMELINE_INGEST_TOKENS"] == "t=c"
    # Without the secrets compose refuses, saying what to set.
    refused = config()
    assert refused.returncode != 0
    assert "set token=cluster pairs in .env" in refused.stderr
