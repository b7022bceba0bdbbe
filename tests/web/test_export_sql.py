"""The exports rendered by PostgreSQL are byte-identical to export.py's renderers, on hostile
values: formula prefixes, quotes, separators, line breaks, unicode, NULLs, arrays."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from app.audit import export_sql, queries
from app.audit.export import csv_row, ndjson_row
from app.audit.schemas import TimelineFilter
from tests.builders import audit_event
from tests.web.conftest import post_events

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOSTILE = [
    "=1+1",
    "+SUM(A1)",
    "-2",
    "@cmd",
    "\tx",
    "\rx",
    "\nx",
    'say "hi"',
    "a,b",
    "line1\nline2",
    "ends\r",
    "ünïcødé ✓ 😀 \u2028 \u00a0",
    "ctrl\x01\x1f\x7f",
    "back\\slash \\.",
    "'already",
    "a;b",
    " lead",
    "plain",
    "",
    '"',
]
LISTS: list[list[str] | None] = [
    None,
    [],
    ["=cmd", "a,b"],
    ['q"', "x\ny"],
    ["-"],
    ["ü", ""],
    ["system:authenticated"],
]
BASE_URLS = ("http://testserver/", "https://audit.example.com/sub,dir/")


async def test_sql_rendered_lines_equal_the_python_renderers(
    client: httpx.AsyncClient, app: FastAPI, database_url: str
) -> None:
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    events = [
        audit_event(
            verb="update",
            objectRef={"resource": "configmaps", "namespace": "default", "name": f"cm-{i}"},
            stageTimestamp=(start + timedelta(seconds=i, microseconds=i % 3 * 1001)).isoformat(),
        )
        for i in range(len(HOSTILE) * 2)
    ]
    await post_events(client, events)
    texts = itertools.cycle(HOSTILE)
    lists = itertools.cycle(LISTS)
    with psycopg.connect(database_url) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM audit_event ORDER BY id")]
        for n, event_id in enumerate(ids):
            values: dict[str, Any] = {
                column: next(texts) if (n + k) % 5 else None
                for k, column in enumerate(
                    ("namespace", "name", "username", "impersonated_user", "user_agent",
                     "subresource", "authz_decision", "resource")
                )
            }  # fmt: skip
            values.update(
                cluster=next(texts),
                verb=next(texts),
                audit_id=f"{next(texts)}-{n}",
                user_groups=next(lists),
                source_ips=next(lists),
                response_code=None if n % 4 == 0 else 200 + n,
            )
            assignments = ", ".join(f"{column} = %({column})s" for column in values)
            conn.execute(
                f"UPDATE audit_event SET {assignments} WHERE id = %(id)s",
                {**values, "id": event_id},
            )
    f = TimelineFilter()
    for base_url in BASE_URLS:
        async with app.state.sessionmaker() as session:
            rows = [row async for row in queries.stream_export_rows(session, f)]
        assert len(rows) == len(events)
        for fmt, render in (("csv", csv_row), ("ndjson", ndjson_row)):
            expected = "".join(render(row, base_url=base_url) for row in rows)
            async with app.state.sessionmaker() as session:
                lines = export_sql.stream_export(session, f, fmt=fmt, base_url=base_url)
                got = b"".join([chunk async for chunk in lines]).decode()
            for a, b in zip(got.splitlines(True), expected.splitlines(True), strict=False):
                assert a == b, (fmt, base_url)
            assert got.encode() == expected.encode(), (fmt, base_url)


async def test_export_endpoints_stream_the_sql_lines(client: httpx.AsyncClient) -> None:
    await post_events(
        client,
        [audit_event(user={"username": '=HYPERLINK("x")', "groups": ["a,b", "-c"]})],
    )
    csv_text = (await client.get("/api/v1/events/export.csv")).text
    header, line = csv_text.removeprefix("\ufeff").split("\r\n")[:2]
    assert header.startswith("time,cluster,verb")
    assert '"\'=HYPERLINK(""x"")"' in line
    assert '"a,b;-c"' in line
    ndjson = (await client.get("/api/v1/events/export.ndjson")).text
    assert ndjson.count("\n") == 1
    assert '"groups": ["a,b", "-c"]' in ndjson


@pytest.mark.parametrize(
    "params",
    [
        {"namespace": ["a'b", "c\\d"], "user": ["x%_*"]},
        {"group": ["g'1"], "since": "2026-11-20T10:00:01Z", "q": "%'\\"},
        {"resource": ["pods/*", "leases.coordination.k8s.io"], "status": "4xx", "per": "request"},
    ],
)
async def test_filtered_exports_select_what_the_api_lists(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    # Filter values (quotes, backslashes, LIKE wildcards) reach COPY as bound parameters.
    events = [
        audit_event(
            user={"username": user, "groups": [group]},
            objectRef={"resource": resource, "namespace": namespace, "name": name},
            responseStatus={"metadata": {}, "code": code},
            stageTimestamp=f"2026-11-20T10:00:0{i % 10}Z",
        )
        for i, (user, group, resource, namespace, name, code) in enumerate(
            itertools.product(
                ["x%_1", "y"], ["g'1", "g"], ["pods", "leases"], ["a'b", "c\\d"],
                ["n%'\\", "m"], [200, 404],
            )
        )
    ]  # fmt: skip
    await post_events(client, events)
    listed = (await client.get("/api/v1/events", params={**params, "limit": 1000})).json()
    expected = [item["audit_id"] for item in listed["items"]]
    assert expected
    csv_text = (await client.get("/api/v1/events/export.csv", params=params)).text
    got = [line.split(",")[-3] for line in csv_text.split("\r\n")[1:-1]]
    assert got == expected
    ndjson = (await client.get("/api/v1/events/export.ndjson", params=params)).text
    assert ndjson.count("\n") == len(expected)
