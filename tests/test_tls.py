"""Self-signed TLS under DATA_DIR/tls/: `tls init` creates a CA and a server certificate once,
reuses them, reissues the server certificate from the same CA for new names, and a TLS client
that trusts only ca.crt completes a handshake for every covered name."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings
from app.tls import DEFAULT_HOSTS, TlsError, ensure_self_signed, tls_directory


def handshake(directory: Path, server_name: str) -> None:
    """A TLS handshake over a socket pair: the server presents server.crt, the client trusts
    only ca.crt and checks server_name (raises ssl.SSLCertVerificationError otherwise)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(directory / "server.crt", directory / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(right, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(left, server_hostname=server_name) as tls:
            tls.sendall(b"x")
    finally:
        left.close()
        thread.join(10)
        right.close()


def test_init_creates_then_reuses_then_reissues_from_the_same_ca(tmp_path: Path) -> None:
    directory = tls_directory(tmp_path)
    first = ensure_self_signed(directory, ["node1.example", "10.1.2.3"])
    assert (first.ca, first.server) == ("created", "created")
    assert set(first.hosts) == {"node1.example", "10.1.2.3", *DEFAULT_HOSTS}
    for name in ("ca.key", "server.key"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700
    ca_before = (directory / "ca.crt").read_bytes()
    cert_before = (directory / "server.crt").read_bytes()
    for name in ("node1.example", "10.1.2.3", "localhost", "127.0.0.1"):
        handshake(directory, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(directory, "other.example")

    again = ensure_self_signed(directory, ["10.1.2.3"])
    assert (again.ca, again.server) == ("reused", "reused")
    assert (directory / "server.crt").read_bytes() == cert_before

    more = ensure_self_signed(directory, ["other.example"])
    assert (more.ca, more.server) == ("reused", "reissued")
    assert (directory / "ca.crt").read_bytes() == ca_before  # kubeconfigs keep working
    assert (directory / "server.crt").read_bytes() != cert_before
    handshake(directory, "other.example")
    handshake(directory, "node1.example")  # names are added, never dropped


def test_a_server_certificate_from_another_ca_is_reissued(tmp_path: Path) -> None:
    directory = tls_directory(tmp_path)
    ensure_self_signed(directory, [])
    foreign = tls_directory(tmp_path / "other")
    ensure_self_signed(foreign, [])
    for name in ("server.crt", "server.key"):
        (directory / name).write_bytes((foreign / name).read_bytes())
    assert ensure_self_signed(directory, []).server == "reissued"
    handshake(directory, "localhost")


@pytest.mark.parametrize("host", ["bad name", "-x.example", "a..b", "http://x", "x" * 254])
def test_unusable_host_names_are_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(TlsError, match="neither an IP address nor a DNS name"):
        ensure_self_signed(tls_directory(tmp_path), [host])
    assert not (tmp_path / "tls" / "ca.key").exists()


def test_an_unreadable_ca_is_never_replaced_silently(tmp_path: Path) -> None:
    directory = tls_directory(tmp_path)
    ensure_self_signed(directory, [])
    (directory / "ca.key").write_text("not a key")
    with pytest.raises(TlsError, match="unusable CA"):
        ensure_self_signed(directory, [])
    assert (directory / "ca.key").read_text() == "not a key"


def test_self_signed_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_TIMELINE_TLS_SELF_SIGNED", "true")
    monkeypatch.setenv("AUDIT_TIMELINE_TLS_HOSTS", "audit.example, 10.0.0.5")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.tls_self_signed is True
    assert settings.tls_hosts == ["audit.example", "10.0.0.5"]
    # Client certificates (TLS_CLIENT_CA) work with the self-signed server certificate too.
    with_client_ca = Settings(_env_file=None, tls_client_ca=tmp_path / "clients.pem")  # type: ignore[call-arg]
    assert with_client_ca.tls_client_ca == tmp_path / "clients.pem"


def test_self_signed_and_a_certificate_file_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exclude each other"):
        Settings(_env_file=None, tls_self_signed=True, tls_certfile=tmp_path / "c.pem")  # type: ignore[call-arg]


def test_cli_tls_init_prints_the_ca_for_the_kubeconfig(tmp_path: Path) -> None:
    env = {**os.environ, "AUDIT_TIMELINE_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "app.cli", "tls", "init", "--host", "audit.example"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    ca = (tmp_path / "data" / "tls" / "ca.crt").resolve()
    assert f"certificate-authority: {ca}" in first.stdout
    assert "CA created" in first.stdout
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert "CA reused" in second.stdout
    assert "server certificate reused" in second.stdout
    bad = subprocess.run(
        [*command[:-1], "not a host"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert "neither an IP address nor a DNS name" in bad.stderr


def test_concurrent_inits_share_one_ca(tmp_path: Path) -> None:
    env = {**os.environ, "AUDIT_TIMELINE_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "app.cli", "tls", "init", "--host", "audit.example"]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0]
    assert sum("CA created" in out for out in outputs) == 1
    handshake(tmp_path / "data" / "tls", "audit.example")
