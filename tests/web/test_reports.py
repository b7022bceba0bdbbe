"""Change reports over the real fixtures, signed bundles and `audit-timeline verify`."""

from __future__ import annotations

import base64
import csv
import fcntl
import io
import json
import zipfile
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.audit.bundle import public_pem
from app.audit.reports import ObjectChange
from app.cli import main
from tests.conftest import TEST_REDACTION_KEY, fixture_paths, requires_fixtures
from tests.fixture_oracle import MOVED_FROM_EXTENSIONS as MOVED
from tests.fixture_oracle import expected_from, unwrap
from tests.web.conftest import TemplateSpy

pytestmark = [requires_fixtures]

WINDOW = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
WRITES = ("create", "update", "patch", "delete")
FINAL = ("ResponseComplete", "Panic")
RANK = {"RequestReceived": 0, "ResponseStarted": 1, "ResponseComplete": 2, "Panic": 3}


def name_of(event: dict[str, Any]) -> str | None:
    ref = event.get("objectRef") or {}
    if ref.get("name"):
        return str(ref["name"])
    if event["verb"] == "create" and not ref.get("subresource"):
        for key in ("responseObject", "requestObject"):
            body = event.get(key)
            if isinstance(body, dict) and (body.get("metadata") or {}).get("name"):
                return str(body["metadata"]["name"])
    return None


def by_hand() -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """From the files: per object, successful (or unknown-result) write requests and users."""
    requests: dict[tuple[str, str], dict[str, Any]] = {}
    for event in expected_from(fixture_paths()).events.values():
        event = unwrap(event)
        ref = event.get("objectRef") or {}
        name = name_of(event)
        if event["verb"] not in WRITES or not name or not ref.get("resource"):
            continue
        if ref.get("subresource") not in (None, "status"):
            continue
        seen = requests.get((event["auditID"], "x"))
        if seen is None or RANK[event["stage"]] > RANK[seen["stage"]]:
            requests[(event["auditID"], "x")] = event
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"changes": 0, "failed": 0, "users": set()}
    )
    for event in requests.values():
        ref = event["objectRef"]
        group = ref.get("apiGroup") or ""
        if group == "extensions":
            group = MOVED.get(ref["resource"], group)
        # A Namespace is cluster-scoped; its requests carry its own name as the namespace.
        namespace = "" if ref["resource"] == "namespaces" else ref.get("namespace") or ""
        key = (group, ref["resource"], namespace, name_of(event) or "")
        code = (event.get("responseStatus") or {}).get("code")
        if event["stage"] in FINAL and code is not None and code >= 400:
            objects[key]["failed"] += 1
            continue
        objects[key]["changes"] += 1
        objects[key]["users"].add((event.get("user") or {}).get("username") or "unknown")
    return {k: v for k, v in objects.items() if v["changes"]}


def load_fixtures(monkeypatch: pytest.MonkeyPatch, database_url: str, data_dir: Path) -> None:
    monkeypatch.setenv("AUDIT_TIMELINE_DATABASE_URL", database_url)
    monkeypatch.setenv("AUDIT_TIMELINE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AUDIT_TIMELINE_REDACTION_KEY", TEST_REDACTION_KEY)
    paths = [str(p) for p in fixture_paths()]
    assert main(["import", *paths, "--cluster", "fx", "--no-progress"]) == 0


def report(tmp_path: Path, fmt: str, *extra: str) -> Path:
    out = tmp_path / f"report.{fmt}"
    args = ["report", "--cluster", "fx", "--since", WINDOW["since"], "--until", WINDOW["until"]]
    assert main([*args, "--format", fmt, "-o", str(out), *extra]) == 0
    return out


def test_change_report_equals_the_figures_from_the_files(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    load_fixtures(monkeypatch, database_url, tmp_path / "data")
    rows = list(csv.DictReader(io.StringIO(report(tmp_path, "csv").read_text("utf-8-sig"))))
    got = {(r["group"], r["resource"], r["namespace"], r["name"]): r for r in rows}
    expected = by_hand()
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        assert int(row["changes"]) == want["changes"], key
        assert int(row["failed_attempts"]) == want["failed"], key
        assert set(row["users"].split(";")) == want["users"], key
    # Read off the files by hand: falco's configmap is created then deleted; its pods are
    # created at RequestResponse (state at T2 known); audit2rbac logs at Metadata (T2 unknown).
    facts = {
        ("", "configmaps", "default", "my-config"): ("created and deleted", "absent", "absent"),
        ("", "pods", "default", "nginx-deployment-544b59f8b8-ffkxm"): (
            "created",
            "absent",
            "known",
        ),
        ("rbac.authorization.k8s.io", "clusterroles", "", "audit2rbac:bob"): (
            "created",
            "absent",
            "unknown",
        ),
        ("rbac.authorization.k8s.io", "clusterroles", "", "system:kube-aggregator"): (
            "deleted",
            "unknown",
            "absent",
        ),
    }
    for key, (kind, t1, t2) in facts.items():
        assert (got[key]["change"], got[key]["state_at_t1"], got[key]["state_at_t2"]) == (
            kind,
            t1,
            t2,
        ), key
    # Never a guessed diff: an object whose state is unknown at either end has no line counts.
    for row in rows:
        known = row["state_at_t1"] != "unknown" and row["state_at_t2"] != "unknown"
        assert (row["lines_added"] != "") == known, row
    records = [json.loads(line) for line in report(tmp_path, "ndjson").read_text().splitlines()]
    assert len(records) == len(rows)
    assert all((r["net_diff"] is None) == (r["lines_added"] is None) for r in records)
    html = report(tmp_path, "html").read_text()
    assert f"{len(rows)} objects" in html


def rewrite(bundle: Path, target: Path, **replace: bytes) -> None:
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            dst.writestr(item.filename, replace.get(item.filename, src.read(item.filename)))


def test_signed_bundle_verifies_and_tampering_is_named(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    load_fixtures(monkeypatch, database_url, tmp_path / "data")
    bundle = report(tmp_path, "bundle", "--resource-group", "rbac")
    key_file = tmp_path / "key.pem"
    capsys.readouterr()
    assert main(["report", "--public-key"]) == 0
    key_file.write_text(capsys.readouterr().out)
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("manifest.json"))
        objects_csv = z.read("objects.csv")
    assert names == {
        "objects.csv", "objects.ndjson", "events.csv", "manifest.json", "manifest.sig",
        "public-key.pem",
    }  # fmt: skip
    assert manifest["query"]["resource_group"] == "rbac"
    assert manifest["row_count"] == objects_csv.decode("utf-8-sig").count("\r\n") - 1 > 0
    assert manifest["software"]["name"] == "audit-timeline"

    assert main(["verify", str(bundle), "--public-key", str(key_file)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("VALID")
    assert "FAIL" not in out

    flipped = bytearray(objects_csv)
    flipped[-3] ^= 0x01
    one_byte = tmp_path / "one-byte.zip"
    rewrite(bundle, one_byte, **{"objects.csv": bytes(flipped)})
    assert main(["verify", str(one_byte), "--public-key", str(key_file)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: objects.csv: SHA-256 mismatch" in out
    assert out.count("FAIL") == 1

    edited = json.loads(json.dumps(manifest))
    edited["row_count"] += 1
    manifest_edit = tmp_path / "manifest-edit.zip"
    rewrite(bundle, manifest_edit, **{"manifest.json": json.dumps(edited).encode()})
    assert main(["verify", str(manifest_edit), "--public-key", str(key_file)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: signature does not verify with the given public key" in out

    other = Ed25519PrivateKey.generate()
    with zipfile.ZipFile(bundle) as z:
        body = z.read("manifest.json")
    other_key = tmp_path / "other-key.zip"
    rewrite(
        bundle,
        other_key,
        **{
            "manifest.sig": base64.b64encode(other.sign(body)),
            "public-key.pem": public_pem(other.public_key()),
        },
    )
    assert main(["verify", str(other_key), "--public-key", str(key_file)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: signature does not verify with the given public key" in out
    assert "FAIL: the bundle carries another key" in out
    # Without --public-key the bundle is self-consistent, and verify says what that proves.
    assert main(["verify", str(other_key)]) == 0
    assert "integrity, not who signed" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "nothing.zip")]) == 2


@pytest.mark.asyncio(loop_scope="session")
async def test_reports_page_files_and_public_key(
    web: httpx.AsyncClient, spy: TemplateSpy, settings: Any
) -> None:
    path = next(p for p in fixture_paths() if p.name.startswith("openshift-clo__apiaudit"))
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
    assert (await web.post("/ingest", json=body, params={"cluster": "oc"})).status_code == 200
    empty = await web.get("/reports")
    assert empty.status_code == 200
    assert spy.context["query"] is None
    params = {"cluster": "oc", **WINDOW}
    page = await web.get("/reports", params=params)
    assert spy.template == "reports/page.html"
    changes = spy.context["changes"]
    assert changes
    assert all(c.cluster == "oc" for c in changes)
    assert "signed bundle (zip)" in page.text
    rows = (await web.get("/reports/report.csv", params=params)).text.lstrip("\ufeff")
    assert len(list(csv.DictReader(io.StringIO(rows)))) == len(changes)
    bad = await web.get("/reports", params={**params, "until": "1999-01-01T00:00:00Z"})
    assert bad.status_code == 422
    missing = await web.get("/reports/report.zip", params={"cluster": "oc"})
    assert missing.status_code == 400
    pem = await web.get("/api/v1/reports/public-key")
    assert pem.text.startswith("-----BEGIN PUBLIC KEY-----")
    bundle = await web.get("/reports/report.zip", params=params)
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as z:
        assert z.read("public-key.pem").decode() == pem.text


@pytest.mark.asyncio(loop_scope="session")
async def test_scheduled_daily_bundles_are_kept_listed_and_verify(
    app: Any, web: httpx.AsyncClient, spy: TemplateSpy, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from app.audit.bundle import load_public_key, verify_bundle
    from app.report_schedule import last_period, run_due

    assert last_period(datetime(2026, 11, 25, 8, tzinfo=UTC), "weekly") == (
        datetime(2026, 11, 16, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
    )
    path = next(p for p in fixture_paths() if p.name.startswith("openshift-clo__apiaudit"))
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
    assert (await web.post("/ingest", json=body, params={"cluster": "oc"})).status_code == 200
    stamps = sorted(item["stageTimestamp"] for item in items)
    day = datetime.fromisoformat(stamps[-1][:10]).replace(tzinfo=UTC)
    settings = app.state.settings.model_copy(update={"report_schedule": "daily"})
    now = day.replace(hour=3) + timedelta(days=1)
    (app.state.settings.data_dir / "reports").mkdir(parents=True, exist_ok=True)
    with (app.state.settings.data_dir / "reports" / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another serve worker is producing them
        assert await run_due(app.state.sessionmaker, settings, now=now) == []
    [made] = await run_due(app.state.sessionmaker, settings, now=now)
    assert made.name == f"change-report-oc-{day:%Y%m%d}-{now:%Y%m%d}.zip"
    assert await run_due(app.state.sessionmaker, settings, now=now) == []  # kept, not redone
    pem = (await web.get("/api/v1/reports/public-key")).text.encode()
    assert verify_bundle(made, public_key=load_public_key(pem, source="api")).is_valid
    app.state.settings = settings
    await web.get("/reports")
    assert [r.name for r in spy.context["scheduled"]] == [made.name]
    download = await web.get(f"/reports/scheduled/{made.name}")
    assert download.content == made.read_bytes()
    assert (await web.get("/reports/scheduled/..%2Fredaction.key")).status_code == 404


@pytest.mark.asyncio(loop_scope="session")
async def test_report_files_need_the_exporter_role(database_url: str, tmp_path: Path) -> None:
    from app.main import create_app
    from tests.conftest import make_settings

    settings = make_settings(
        database_url, tmp_path, host="0.0.0.0", access_tokens="v=viewer,e=exporter"
    )
    app = create_app(settings)
    params = {"cluster": "c", **WINDOW}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        for path, viewer in (
            ("/coverage", 200),
            ("/api/v1/coverage", 200),
            ("/reports", 200),
            ("/api/v1/reports/public-key", 200),
            ("/reports/report.csv", 403),
            ("/reports/report.zip", 403),
        ):
            response = await http.get(path, params=params, headers={"Authorization": "Bearer v"})
            assert response.status_code == viewer, path
            assert (await http.get(path, params=params)).status_code == 401, path
        exporter = await http.get(
            "/reports/report.zip", params=params, headers={"Authorization": "Bearer e"}
        )
        assert exporter.status_code == 200


def test_writes_without_recorded_results_are_an_unknown_change() -> None:
    # Two writes stored only as RequestReceived: whether anything changed is not known.
    unrecorded = ObjectChange("c", "", "configmaps", "a", "x", changes=2, state_at_t1="known")
    assert unrecorded.change == "unknown"
    recorded = ObjectChange(
        "c", "", "configmaps", "a", "x", changes=2, recorded_changes=1, state_at_t1="known"
    )
    assert recorded.change == "modified"
