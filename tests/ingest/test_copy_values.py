"""What COPY writes for a stored event comes back equal: text[] columns written in
PostgreSQL's array syntax by app/audit/queries.py, whatever the elements hold."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.builders import audit_event, event_list
from tests.conftest import query_all

pytestmark = pytest.mark.asyncio(loop_scope="session")

AWKWARD = [
    "",
    "NULL",
    "null",
    'quote " inside',
    "back\\slash",
    "\\",
    '\\"',
    "comma, and {braces}",
    "tab\tnewline\nreturn\r",
    "  spaces  ",
    "ünïcødé 𝄞",
]


async def test_awkward_list_elements_round_trip(
    client: httpx.AsyncClient, database_url: str
) -> None:
    events = [
        audit_event(
            user={"username": "u", "groups": AWKWARD},
            impersonatedUser={"username": "i", "groups": list(reversed(AWKWARD))},
            sourceIPs=["10.0.0.1", "::1", "fe80::1%eth0"],
        ),
        audit_event(user={"username": "empty", "groups": []}, sourceIPs=[]),
        audit_event(user={"username": "none"}),
    ]
    response = await client.post(
        "/ingest",
        content=json.dumps(event_list(events)),
        headers={"content-type": "application/json"},
    )
    assert response.json() == {"stored": 3, "duplicates": 0, "quarantined": 0}
    rows = query_all(
        database_url,
        "SELECT username, user_groups, impersonated_groups, source_ips FROM audit_event"
        " ORDER BY username",
    )
    assert rows == [
        ("empty", [], None, []),
        ("none", None, None, ["10.0.0.7"]),
        ("u", AWKWARD, list(reversed(AWKWARD)), ["10.0.0.1", "::1", "fe80::1%eth0"]),
    ]
