"""gap_markers on in-memory events (no database): each marker and when it stays silent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.audit.gaps import GARBAGE_COLLECTOR, NAMESPACE_CONTROLLER, gap_markers
from app.audit.models import AuditEvent

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def event(n: int, verb: str = "update", **columns: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "id": n,
        "cluster": "c",
        "audit_id": f"req-{n}",
        "stage": "ResponseComplete",
        "level": "RequestResponse",
        "verb": verb,
        "resource": "deployments",
        "api_group": "apps",
        "namespace": "a",
        "name": "web",
        "username": "alice",
        "response_code": 200,
        "stage_at": T0 + timedelta(minutes=n),
        "raw": {},
        "request_object": {"metadata": {"name": "web"}},
        "response_object": {"metadata": {"name": "web", "resourceVersion": str(100 + n)}},
    }
    values.update(columns)
    return AuditEvent(**values)


def body(version: str, generation: int) -> dict[str, Any]:
    return {"metadata": {"name": "web", "resourceVersion": version, "generation": generation}}


def kinds(markers: dict[int, list[Any]], n: int) -> list[str]:
    return [g.kind for g in markers.get(n, [])]


def test_generation_jump_without_resource_versions_in_requests() -> None:
    first = event(1, request_object={"spec": {}}, response_object=body("5", 3))
    second = event(2, request_object={"spec": {}}, response_object=body("9", 5))
    markers = gap_markers([second, first])
    assert kinds(markers, 2) == ["jump"]
    assert "generation jumped from 3 to 5: 1 spec change(s)" in markers[2][0].message
    third = event(3, request_object={"spec": {}}, response_object=body("10", 6))
    assert kinds(gap_markers([second, third]), 3) == []


def test_jump_against_the_version_before_the_page() -> None:
    before = event(1, response_object=body("7", 1))
    update = event(2, request_object=body("8", 1), response_object=body("9", 2))
    [jump] = gap_markers([update], previous=before)[2]
    assert "based on version 8, but the last recorded version is 7" in jump.message
    assert gap_markers([update], previous=event(1, response_object=body("8", 1))) == {}


def test_truncation_controllers_and_quiet_reads() -> None:
    truncated = event(
        1, raw={"annotations": {"audit.k8s.io/truncated": "true"}}, response_object=None
    )
    missing = event(2, response_object=None)
    gc = event(3, "delete", username=GARBAGE_COLLECTOR, response_object={"kind": "Status"})
    ns = event(4, "delete", username=NAMESPACE_CONTROLLER, response_object={"kind": "Status"})
    read = event(5, "get", level="Metadata", response_object=None, request_object=None)
    markers = gap_markers([truncated, missing, gc, ns, read])
    assert kinds(markers, 1) == ["truncated"]
    assert "audit.k8s.io/truncated" in markers[1][0].message
    assert kinds(markers, 2) == ["truncated"]
    assert markers[2][0].message.startswith("Response body missing at RequestResponse")
    assert kinds(markers, 3) == ["garbage_collector"]
    assert kinds(markers, 4) == ["controller"]
    assert kinds(markers, 5) == []


def test_request_level_and_stages_of_one_request_share_markers() -> None:
    received = event(1, stage="RequestReceived", level="Request", response_code=None)
    complete = event(2, audit_id="req-1", level="Request", response_object=None)
    markers = gap_markers([received, complete])
    assert kinds(markers, 2) == ["not_recorded"]
    assert "Request level" in markers[2][0].message
    assert markers[1] == markers[2]


def test_a_delete_without_a_result_does_not_end_the_record() -> None:
    # A delete stored only as RequestReceived may not have happened: the next update is still
    # compared with the last recorded version, and the unknown delete is the hinted cause.
    first = event(1, response_object=body("7", 1))
    delete = event(2, "delete", stage="RequestReceived", response_code=None,
                   response_object=None)  # fmt: skip
    update = event(3, request_object=body("8", 1), response_object=body("9", 2))
    [jump] = [g for g in gap_markers([update, delete, first])[3] if g.kind == "jump"]
    assert "last recorded version is 7" in jump.message
    assert "without a recorded result" in jump.message
