"""Start and stop a real single-node Elasticsearch 7.17 for the test suite.

The node runs in its own JVM from Maven Central jars (no Elasticsearch distribution): the small
Maven project in ``tests/es_launcher`` depends on the server and its HTTP plugin, and
:func:`build_classpath` builds it once and caches the resulting classpath. :class:`EsServer`
starts the launcher, waits until the cluster is at least yellow, and stops or kills it. A restart
with the same data directory and port keeps the indices and the URL.

Needs ``java`` (17) and ``mvn`` on ``PATH`` (or ``JAVA_HOME``); the first build downloads about
80 MB into ``~/.m2``. Run ``python tests/es_server.py`` for a build + start + smoke check.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

LAUNCHER_DIR = Path(__file__).resolve().parent / "es_launcher"
MAIN_CLASS = "audit.timeline.es.EsLauncher"
DEFAULT_CACHE_DIR = Path(
    os.environ.get("AUDIT_TIMELINE_ES_CACHE", str(Path.home() / ".cache" / "audit-timeline-es"))
)
_BUILD_RECIPE = "v1"  # bump to force a rebuild when the mvn command line below changes


def _source_hash() -> str:
    """Hash of the launcher's pom and sources (paths and contents)."""
    digest = hashlib.sha256(_BUILD_RECIPE.encode())
    files = [LAUNCHER_DIR / "pom.xml", *sorted((LAUNCHER_DIR / "src").rglob("*"))]
    for path in files:
        if path.is_file():
            digest.update(path.relative_to(LAUNCHER_DIR).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java not found: install JDK 17 or set JAVA_HOME")
    return java


def build_classpath(cache_dir: Path = DEFAULT_CACHE_DIR) -> str:
    """Build the launcher with Maven if its pom or sources changed; return its full classpath.

    The build output goes to ``cache_dir/target`` (outside the work tree); the classpath is
    cached in ``cache_dir/classpath.txt`` under a hash of the pom and sources. Safe to call from
    several processes at once (a file lock serialises builds).
    """
    cache_dir = cache_dir.resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    build_dir = cache_dir / "target"
    jar = build_dir / "es-launcher-1.0.jar"
    deps_file = build_dir / "dependencies.classpath"
    stamp_file = cache_dir / "build.sha256"
    cp_file = cache_dir / "classpath.txt"
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = _source_hash()
        if stamp_file.is_file() and cp_file.is_file() and stamp_file.read_text() == wanted:
            classpath = cp_file.read_text().strip()
            if all(Path(entry).exists() for entry in classpath.split(os.pathsep)):
                return classpath
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("mvn not found: install Maven 3.8+")
        cmd = [
            mvn, "-q", "-B", "-f", str(LAUNCHER_DIR / "pom.xml"),
            "package", "dependency:build-classpath",
            f"-Dmdep.outputFile={deps_file}",
            f"-Des.launcher.build.dir={build_dir}",
        ]  # fmt: skip
        result = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"Maven build of the ES launcher failed ({result.returncode}):\n"
                f"{' '.join(cmd)}\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
            )
        classpath = os.pathsep.join([str(jar), deps_file.read_text().strip()])
        cp_file.write_text(classpath + "\n")
        stamp_file.write_text(wanted)
        return classpath


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class EsServer:
    """One Elasticsearch node in a child JVM, listening on ``127.0.0.1:port``."""

    def __init__(
        self,
        home: Path,
        data: Path | None = None,
        port: int | None = None,
        heap: str = "512m",
        *,
        classpath: str | None = None,
        cache_dir: Path = DEFAULT_CACHE_DIR,
        startup_timeout: float = 90.0,
    ) -> None:
        self.home = home.resolve()
        self.data = (data or self.home / "data").resolve()
        self.port = port if port is not None else free_port()
        self.heap = heap
        self.classpath = classpath
        self.cache_dir = cache_dir
        self.startup_timeout = startup_timeout
        self.log_path = self.home / "es.log"
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9200``; stable across restarts."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The JVM's process id while started."""
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        """Whether the JVM is alive."""
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """Return the java command line (builds the launcher first if needed)."""
        if self.classpath is None:
            self.classpath = build_classpath(self.cache_dir)
        return [
            _java(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Xss1m",
            "-Dfile.encoding=UTF-8",
            "-Djava.awt.headless=true",
            "-Djava.locale.providers=SPI,COMPAT",
            f"-Djava.io.tmpdir={self.home / 'tmp'}",
            "-Des.set.netty.runtime.available.processors=false",
            "-Des.distribution.flavor=default",
            "-Des.distribution.type=tar",
            "-Dio.netty.noUnsafe=true",
            "-Dio.netty.noKeySetOptimization=true",
            "-Dio.netty.recycler.maxCapacityPerThread=0",
            "-Dlog4j2.formatMsgNoLookups=true",
            "-Dlog4j.shutdownHookEnabled=false",  # keep logging until the node has closed
            "-Des.launcher.exitOnStdinEof=true",  # die with this process
            "-cp",
            self.classpath,
            MAIN_CLASS,
            str(self.home),
            str(self.data),
            str(self.port),
        ]

    def start(self) -> None:
        """Start the node and wait until ``/_cluster/health`` is at least yellow."""
        if self.running():
            raise RuntimeError(f"Elasticsearch already running at {self.url}")
        cmd = self.command()
        if _port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is already in use; cannot start Elasticsearch")
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n==== es_server: starting at {time.ctime()} ====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,  # never written; EOF tells the launcher to exit
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,  # a Ctrl-C in the terminal goes to the tests only
            )
        try:
            self._wait_ready(began + self.startup_timeout)
        except BaseException:
            self.kill()
            raise
        self.startup_seconds = time.monotonic() - began

    def _wait_ready(self, deadline: float) -> None:
        health = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s"
        proc = self._proc
        if proc is None:
            raise RuntimeError("Elasticsearch is not running")
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"Elasticsearch exited with code {proc.returncode} during start-up; "
                    f"log tail ({self.log_path}):\n{self.log_tail()}"
                )
            # not up yet: refused/timeout/408 (URLError, HTTPError are OSErrors), or half a reply
            with (
                contextlib.suppress(OSError, ValueError, http.client.HTTPException),
                urllib.request.urlopen(health, timeout=5) as resp,
            ):
                if json.load(resp).get("status") in ("yellow", "green"):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Elasticsearch not ready at {self.url} after {self.startup_timeout:.0f}s; "
                    f"log tail ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully (SIGTERM), then SIGKILL if it has not exited within ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close()

    def kill(self) -> None:
        """Kill at once (SIGKILL), as a crash would."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._close()

    def _close(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc = None

    def log_tail(self, lines: int = 60) -> str:
        """Return the last lines of the node's log (all starts append to one file)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _call(url: str, method: str = "GET", body: Any = None) -> Any:
    """One JSON request; returns the decoded response body."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"{method} {url} -> {err.code}: {err.read().decode()}") from err


def _smoke(url: str) -> None:
    index = f"{url}/smoke"
    _call(
        index,
        "PUT",
        {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "properties": {
                    "ts": {"type": "date"},
                    "name": {"type": "keyword"},
                    "msg": {"type": "text"},
                    "labels": {"type": "flattened"},
                }
            },
        },
    )
    for i in range(3):
        doc = {
            "ts": f"2024-01-0{i + 1}T00:00:00Z",
            "name": f"n{i}",
            "msg": f"hello {i}",
            "labels": {"app": f"a{i}", "tier": "web"},
        }
        _call(f"{index}/_doc/{i}?refresh=true", "PUT", doc)
    pit = _call(f"{index}/_pit?keep_alive=1m", "POST")["id"]
    seen: list[str] = []
    search_after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {
            "size": 2,
            "pit": {"id": pit, "keep_alive": "1m"},
            "query": {"term": {"labels.tier": "web"}},
            "sort": [{"ts": "asc"}, {"_shard_doc": "asc"}],
        }
        if search_after is not None:
            body["search_after"] = search_after
        hits = _call(f"{url}/_search", "POST", body)["hits"]["hits"]
        if not hits:
            break
        seen += [hit["_source"]["name"] for hit in hits]
        search_after = hits[-1]["sort"]
    _call(f"{url}/_pit", "DELETE", {"id": pit})
    if seen != ["n0", "n1", "n2"]:
        raise RuntimeError(f"PIT + search_after returned {seen}")
    _report(f"smoke: flattened + PIT + search_after OK ({seen})")


def _report(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - this is the script's output


def main() -> int:
    """Build, start, smoke-check and stop a node, printing timings."""
    t0 = time.monotonic()
    classpath = build_classpath(DEFAULT_CACHE_DIR)
    _report(f"build_classpath: {time.monotonic() - t0:.1f}s ({DEFAULT_CACHE_DIR})")
    with tempfile.TemporaryDirectory(prefix="es-smoke-") as tmp:
        server = EsServer(Path(tmp), classpath=classpath)
        server.start()
        try:
            _report(f"Elasticsearch at {server.url}, started in {server.startup_seconds:.1f}s")
            t1 = time.monotonic()
            _smoke(server.url)
            _report(f"smoke check: {time.monotonic() - t1:.1f}s")
        finally:
            t2 = time.monotonic()
            server.stop()
            _report(f"stop: {time.monotonic() - t2:.1f}s")
    _report(f"total: {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
