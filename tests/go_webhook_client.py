"""Build and run kube-apiserver's audit webhook backend (the Go program in tests/webhook_client/).

The program is built once with the machine's Go and cached in tests/webhook_client/bin/
(git-ignored) under a hash of its sources and the Go version; modules come from the Go module
proxy into the usual module cache. Run ``python tests/go_webhook_client.py`` to build it alone
and print the build time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parent / "webhook_client"
BINARY = CLIENT_DIR / "bin" / "audit-webhook-client"
# Where a Go toolchain may be when `go` is not on PATH: the official tarball's place, and
# Debian's golang-go (what scripts/setup --test installs when it finds no Go).
GO_CANDIDATES = (Path("/usr/local/go/bin/go"), Path("/usr/lib/go/bin/go"))


def find_go() -> str:
    """The `go` command, or a RuntimeError saying how to get one."""
    found = shutil.which("go")
    if found:
        return found
    for candidate in GO_CANDIDATES:
        if candidate.is_file():
            return str(candidate)
    raise RuntimeError("no Go toolchain found: run scripts/setup --test (installs Debian's Go)")


def _go_env() -> dict[str, str]:
    # -mod=mod: fetch what go.sum lists through the module proxy; never a vendor directory.
    # GOTOOLCHAIN=local: build with the Go that is installed, never download another.
    return {
        **os.environ,
        "GOFLAGS": "-mod=mod -buildvcs=false",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }


def _source_hash(go: str) -> str:
    version = subprocess.run(
        [go, "version"], capture_output=True, text=True, check=True, env=_go_env()
    ).stdout
    digest = hashlib.sha256(version.encode())
    for path in sorted(CLIENT_DIR.glob("*")):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_client() -> Path:
    """Build the client if its sources (or the Go version) changed; return the binary's path.
    Safe to call from several processes at once (a file lock serialises builds)."""
    go = find_go()
    BINARY.parent.mkdir(exist_ok=True)
    stamp = BINARY.parent / "build.sha256"
    with (BINARY.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = _source_hash(go)
        if BINARY.is_file() and stamp.is_file() and stamp.read_text() == wanted:
            return BINARY
        result = subprocess.run(
            [go, "build", "-o", str(BINARY), "."],
            cwd=CLIENT_DIR,
            capture_output=True,
            text=True,
            env=_go_env(),
            timeout=1800,
        )
        if result.returncode != 0:
            raise RuntimeError(f"go build failed:\n{result.stdout}\n{result.stderr}")
        stamp.write_text(wanted)
    return BINARY


@dataclass(frozen=True)
class ClientRun:
    """What the client reported (its JSON summary) and logged."""

    summary: dict[str, float]
    stderr: str


def write_kubeconfig(path: Path, *, server: str, token: str, ca: Path | None) -> Path:
    """A webhook kubeconfig as --audit-webhook-config-file takes it (JSON is valid YAML)."""
    cluster: dict[str, str] = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "audit-timeline", "cluster": cluster}],
        "users": [{"name": "kube-apiserver", "user": {"token": token}}],
        "contexts": [
            {"name": "default", "context": {"cluster": "audit-timeline", "user": "kube-apiserver"}}
        ],
        "current-context": "default",
    }
    path.write_text(json.dumps(config, indent=2))
    return path


def start_client(
    kubeconfig: Path,
    events_file: Path,
    *,
    rate: float = 0,
    initial_backoff: str = "10s",
) -> subprocess.Popen[str]:
    """Start the client on events_file (one Event per line); see finish_client."""
    return subprocess.Popen(
        [
            str(build_client()),
            f"-kubeconfig={kubeconfig}",
            f"-events={events_file}",
            f"-rate={rate}",
            f"-initial-backoff={initial_backoff}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_client(process: subprocess.Popen[str], timeout: float = 300) -> ClientRun:
    """Wait for the client to send everything and exit; its summary and log."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"webhook client did not finish in {timeout}s:\n{stderr[-4000:]}"
        ) from None
    if process.returncode != 0 or not stdout.strip():
        raise AssertionError(f"webhook client exited {process.returncode}:\n{stderr[-4000:]}")
    return ClientRun(summary=json.loads(stdout.strip().splitlines()[-1]), stderr=stderr)


if __name__ == "__main__":
    started = time.monotonic()
    binary = build_client()
    print(f"{binary} ready in {time.monotonic() - started:.1f} s")  # noqa: T201
    sys.exit(0)
