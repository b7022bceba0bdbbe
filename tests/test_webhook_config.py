"""`audit-timeline webhook-config`: every format parsed back and checked field by field."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.cli import main

URL = "https://audit.example.com:8443/ingest"
TOKEN = "s3cr3t-token-for-prod"
EXPECTED_FLAGS = {
    "--audit-policy-file": "/etc/kubernetes/audit/audit-policy.yaml",
    "--audit-webhook-config-file": "/etc/kubernetes/audit/webhook-kubeconfig.yaml",
    "--audit-webhook-version": "audit.k8s.io/v1",
    "--audit-webhook-mode": "batch",
    "--audit-webhook-batch-max-size": "400",
    "--audit-webhook-batch-max-wait": "5s",
    "--audit-webhook-initial-backoff": "10s",
}


def make_cert(common_name: str, *, is_ca: bool) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment (no .env) whose INGEST_TOKENS map TOKEN to prod; returns DATA_DIR."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REQUIRE_DATABASE_URL", "TLS_CLIENT_CA", "TLS_CERTFILE"):
        monkeypatch.delenv(f"AUDIT_TIMELINE_{name}", raising=False)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("AUDIT_TIMELINE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AUDIT_TIMELINE_INGEST_TOKENS", f"other-token=staging,{TOKEN}=prod")
    return data_dir


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["webhook-config", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_kubeconfig_has_server_token_and_default_ca(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `audit-timeline tls init` leaves behind is used when --ca is not given.
    ca_pem, _ = make_cert("audit-timeline test CA", is_ca=True)
    (env / "tls").mkdir(parents=True)
    (env / "tls" / "ca.crt").write_bytes(ca_pem)

    code, out, err = run(capsys, "--cluster", "prod", "--server-url", URL)

    assert (code, err) == (0, "")
    config: dict[str, Any] = yaml.safe_load(out)
    assert config["apiVersion"] == "v1"
    assert config["kind"] == "Config"
    assert len(config["clusters"]) == len(config["users"]) == len(config["contexts"]) == 1
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in config["users"] if u["name"] == context["context"]["user"])
    assert cluster["cluster"] == {
        "server": URL,
        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
    }
    assert user["user"] == {"token": TOKEN}


def test_explicit_ca_wins_and_no_ca_means_system_roots(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--cluster", "prod", "--server-url", URL)
    assert code == 0
    assert yaml.safe_load(out)["clusters"][0]["cluster"] == {"server": URL}

    ca_pem, _ = make_cert("corporate CA", is_ca=True)
    (tmp_path / "corp.pem").write_bytes(ca_pem)
    code, out, _ = run(capsys, "--cluster", "prod", "--server-url", URL, "--ca", "corp.pem")
    assert code == 0
    data = yaml.safe_load(out)["clusters"][0]["cluster"]["certificate-authority-data"]
    assert base64.b64decode(data) == ca_pem


def test_client_certificate_besides_the_token(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cert_pem, key_pem = make_cert("kube-apiserver", is_ca=False)
    (tmp_path / "client.crt").write_bytes(cert_pem)
    (tmp_path / "client.key").write_bytes(key_pem)
    args = ["--client-cert", "client.crt", "--client-key", "client.key"]

    # Without a client CA the server would never accept the certificate.
    code, out, err = run(capsys, "--cluster", "prod", "--server-url", URL, *args)
    assert (code, out) == (2, "")
    assert "AUDIT_TIMELINE_TLS_CLIENT_CA" in err

    (tmp_path / "server.crt").write_bytes(cert_pem)
    monkeypatch.setenv("AUDIT_TIMELINE_TLS_CERTFILE", str(tmp_path / "server.crt"))
    monkeypatch.setenv("AUDIT_TIMELINE_TLS_CLIENT_CA", str(tmp_path / "server.crt"))
    code, out, err = run(capsys, "--cluster", "prod", "--server-url", URL, *args)
    assert (code, err) == (0, "")
    user = yaml.safe_load(out)["users"][0]["user"]
    # The server maps the sender to its cluster by the token (tests/ingest/test_tls_client_certs).
    assert user == {
        "token": TOKEN,
        "client-certificate-data": base64.b64encode(cert_pem).decode(),
        "client-key-data": base64.b64encode(key_pem).decode(),
    }


def test_flags_one_per_line_without_comments(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--cluster", "prod", "--server-url", URL, "--format", "flags")
    assert code == 0
    lines = out.splitlines()
    assert all(line.startswith("--") and "#" not in line and " " not in line for line in lines)
    assert dict(line.split("=", 1) for line in lines) == EXPECTED_FLAGS


def test_small_body_limit_turns_on_truncation(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUDIT_TIMELINE_INGEST_MAX_BODY_BYTES", str(4 * 1024 * 1024))
    monkeypatch.setenv("AUDIT_TIMELINE_INGEST_MAX_ITEMS", "100")
    code, out, _ = run(capsys, "--cluster", "prod", "--server-url", URL, "--format", "flags")
    assert code == 0
    flags = dict(line.split("=", 1) for line in out.splitlines())
    assert flags["--audit-webhook-batch-max-size"] == "100"
    assert flags["--audit-webhook-truncate-enabled"] == "true"
    assert int(flags["--audit-webhook-truncate-max-batch-size"]) < 4 * 1024 * 1024


def test_static_pod_is_a_valid_pod_mounting_the_flag_paths(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "--cluster",
        "prod",
        "--server-url",
        URL,
        "--format",
        "static-pod",
        "--host-dir",
        "/srv/audit",
    )
    assert code == 0
    pod = yaml.safe_load(out)
    kubernetes_validate.validate(pod, "1.37", strict=True)
    container = pod["spec"]["containers"][0]
    assert container["name"] == "kube-apiserver"
    flags = dict(flag.split("=", 1) for flag in container["command"])
    assert flags == {
        **EXPECTED_FLAGS,
        "--audit-policy-file": "/srv/audit/audit-policy.yaml",
        "--audit-webhook-config-file": "/srv/audit/webhook-kubeconfig.yaml",
    }
    [mount] = container["volumeMounts"]
    [volume] = pod["spec"]["volumes"]
    assert mount == {"name": volume["name"], "mountPath": "/srv/audit", "readOnly": True}
    assert volume["hostPath"] == {"path": "/srv/audit", "type": "DirectoryOrCreate"}


def test_kubeadm_cluster_configuration(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--cluster", "prod", "--server-url", URL, "--format", "kubeadm")
    assert code == 0
    doc = yaml.safe_load(out)
    assert doc["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert doc["kind"] == "ClusterConfiguration"
    args = {f"--{a['name']}": a["value"] for a in doc["apiServer"]["extraArgs"]}
    assert args == EXPECTED_FLAGS
    assert all(isinstance(a["value"], str) for a in doc["apiServer"]["extraArgs"])
    assert doc["apiServer"]["extraVolumes"] == [
        {
            "name": "audit-timeline",
            "hostPath": "/etc/kubernetes/audit",
            "mountPath": "/etc/kubernetes/audit",
            "readOnly": True,
            "pathType": "DirectoryOrCreate",
        }
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server-url", "http://audit.example.com/ingest"], "only to https:// servers"),
        (["--server-url", "https://audit.example.com/events"], "must end in /ingest"),
        (["--server-url", "https://u:p@audit.example.com/ingest"], "no user, password"),
        (["--server-url", URL, "--token", "unknown"], "not in AUDIT_TIMELINE_INGEST_TOKENS"),
        (["--server-url", URL, "--token", "other-token"], "belongs to cluster 'staging'"),
        (["--server-url", URL, "--ca", "missing.pem"], "cannot read missing.pem"),
        (["--server-url", URL, "--ca", "not-a-cert.pem"], "holds no PEM certificate"),
    ],
)
def test_refusals_say_why(
    env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    code, out, err = run(capsys, "--cluster", "prod", *args)
    assert (code, out) == (2, "")
    assert message in err
    assert TOKEN not in err


def test_cluster_without_token(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--cluster", "dev", "--server-url", URL)
    assert (code, out) == (2, "")
    assert "no token for cluster 'dev'" in err
    assert "'<long random token>=dev'" in err


def test_ca_from_stdin_as_the_chart_notes_say(env: Path, tmp_path: Path) -> None:
    """`kubectl exec -i ... webhook-config ... --ca /dev/stdin < ca.crt` (NOTES.txt, README)."""
    ca_pem, _ = make_cert("private CA", is_ca=True)
    cli = str(Path(sys.executable).parent / "audit-timeline")
    result = subprocess.run(
        [cli, "webhook-config", "--cluster", "prod", "--server-url", URL, "--ca", "/dev/stdin"],
        input=ca_pem,
        capture_output=True,
        env=dict(os.environ),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cluster = yaml.safe_load(result.stdout)["clusters"][0]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == ca_pem
