"""`serve` with TLS and a client CA: a client certificate is required, a bearer token still maps
the cluster. Runs the real CLI under uvicorn with certificates made by openssl."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import audit_event, event_list
from tests.conftest import TEST_REDACTION_KEY, query_all


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)  # fmt: skip
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)  # fmt: skip
        ext = folder / f"{name}.ext"
        ext.write_text(extra + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", str(ext),
                cwd=folder)  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tls_server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    make_pki(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "AUDIT_TIMELINE_DATABASE_URL": database_url,
        "AUDIT_TIMELINE_DATA_DIR": str(tmp_path / "data"),
        "AUDIT_TIMELINE_REDACTION_KEY": TEST_REDACTION_KEY,
        "AUDIT_TIMELINE_PORT": str(port),
        "AUDIT_TIMELINE_INGEST_TOKENS": "tls-token=tls-cluster",
        "AUDIT_TIMELINE_TLS_CERTFILE": str(tmp_path / "server.crt"),
        "AUDIT_TIMELINE_TLS_KEYFILE": str(tmp_path / "server.key"),
        "AUDIT_TIMELINE_TLS_CLIENT_CA": str(tmp_path / "ca.crt"),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        yield url, tmp_path
    finally:
        proc.terminate()
        proc.wait(10)


def test_client_certificate_is_required(tls_server: tuple[str, Path], database_url: str) -> None:
    url, pki = tls_server
    body = json.dumps(event_list([audit_event()]))
    headers = {"authorization": "Bearer tls-token", "content-type": "application/json"}
    with_cert = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with_cert.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    response = httpx.post(f"{url}/ingest", content=body, headers=headers, verify=with_cert)
    assert response.status_code == 200
    assert response.json()["stored"] == 1
    without_cert = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.post(f"{url}/ingest", content=body, headers=headers, verify=without_cert)
    assert query_all(database_url, "SELECT cluster FROM audit_event") == [("tls-cluster",)]
