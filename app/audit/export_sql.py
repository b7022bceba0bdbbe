"""Exports written by PostgreSQL: COPY (SELECT ...) TO STDOUT of the matching events.

The SQL twins of app/audit/export.py's csv_row and ndjson_row, byte for byte (same columns,
quoting, formula neutralisation and JSON escaping; tests/web/test_export_sql.py compares them
on hostile values):
- CSV: the cells are computed in SQL (lists joined with ';', formulas neutralised, times as
  datetime.isoformat() with Z) and COPY's CSV format quotes them as csv.writer does (a cell
  with , " CR or LF is quoted, quotes doubled; empty cells are NULL, so never quoted). COPY ends
  each row with LF, one protocol message per row: it becomes CRLF here.
- NDJSON: each line is built in SQL (to_json escapes strings as json.dumps with
  ensure_ascii=False) and copied as text, whose only escape here is a doubled backslash.
Python only passes the bytes on: several times the rate of rendering rows in Python, in flat
memory (COPY streams; a chunk of rows at a time is joined).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, cast, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.export import EXPORT_COLUMNS, FORMULA_PREFIXES, LIST_SEPARATOR
from app.audit.models import AuditEvent
from app.audit.queries import driver_connection, export_conditions
from app.audit.schemas import TimelineFilter

ExportFormat = Literal["csv", "ndjson"]
_COLUMNS = AuditEvent.__table__.c
# export.neutralise_formula as a regular expression: a leading = + - @ TAB CR or LF gets a quote.
_FORMULA = "^([" + "".join("\\" + c if c in "-\\]^" else c for c in FORMULA_PREFIXES) + "])"
# Rows joined into one chunk of the response.
_CHUNK_ROWS = 2000


def _text(expression: Any) -> ColumnElement[str]:
    return cast(expression, String)


def _time(column: Any) -> ColumnElement[str]:
    # datetime.isoformat() in UTC with "Z": microseconds only when there are any.
    utc = func.timezone("UTC", column)
    iso = func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS.US', type_=String)
    return func.regexp_replace(iso, r"\.000000$", "", type_=String) + "Z"


def _url(column: Any, base_url: str) -> ColumnElement[str]:
    return literal(base_url.rstrip("/") + "/changes/", String) + _text(column)


def _csv_cells(base_url: str) -> list[ColumnElement[Any]]:
    """export.csv_cell of each export field, NULL for an empty cell."""
    cells: list[ColumnElement[Any]] = []
    for _, field in EXPORT_COLUMNS:
        column = _COLUMNS[field]
        if field == "id":
            value = _url(column, base_url)
        elif field == "stage_at":
            value = _time(column)
        elif isinstance(column.type, ARRAY):
            value = func.array_to_string(column, LIST_SEPARATOR, type_=String)
        else:
            value = _text(column)
        neutral = func.regexp_replace(value, _FORMULA, "'\\1", type_=String)
        cells.append(func.nullif(neutral, "", type_=String).label(field))
    return cells


def _ndjson_line(base_url: str) -> ColumnElement[str]:
    """json.dumps(export_record(row), ensure_ascii=False): keys in column order, ", " and ": "
    separators, None as null."""
    parts: list[Any] = []
    for i, (header, field) in enumerate(EXPORT_COLUMNS):
        column = _COLUMNS[field]
        if field == "id":
            value = _text(func.to_json(_url(column, base_url)))
        elif field == "stage_at":
            value = _text(func.to_json(_time(column)))
        elif isinstance(column.type, ARRAY):
            # ["a","b"] -> ["a", "b"]: inside a JSON string a quote is escaped, so an
            # unescaped "," only ever separates two elements.
            value = func.replace(_text(func.array_to_json(column)), '","', '", "', type_=String)
        else:
            value = _text(func.to_json(column))
        parts += [
            f'"{header}": ' if i == 0 else f', "{header}": ',
            func.coalesce(value, "null", type_=String),
        ]
    return func.concat("{", *parts, "}", type_=String).label("line")


async def stream_export(
    session: AsyncSession, f: TimelineFilter, *, fmt: ExportFormat, base_url: str
) -> AsyncGenerator[bytes]:
    """Every matching event's export line (UTF-8), newest first, a chunk of rows at a time."""
    columns = _csv_cells(base_url) if fmt == "csv" else [_ndjson_line(base_url)]
    stmt = (
        select(*columns)
        .where(*export_conditions(f))
        .order_by(AuditEvent.stage_at.desc(), AuditEvent.id.desc())
    )
    compiled = stmt.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
    )
    options = "FORMAT csv" if fmt == "csv" else "FORMAT text"
    raw = await driver_connection(session)
    async with raw.cursor() as cursor:
        copy_sql = f"COPY ({compiled.string}) TO STDOUT ({options}, ENCODING 'UTF8')"
        async with cursor.copy(copy_sql, compiled.params) as copy:
            chunk: list[bytes] = []
            async for data in copy:
                chunk.append(bytes(data))
                if len(chunk) >= _CHUNK_ROWS:
                    yield _finish(chunk, fmt)
                    chunk = []
            if chunk:
                yield _finish(chunk, fmt)


def _finish(rows: list[bytes], fmt: ExportFormat) -> bytes:
    if fmt == "csv":
        # One COPY message per row, each ending in LF: csv.writer ends rows with CRLF.
        return b"".join(row[:-1] + b"\r\n" for row in rows)
    # COPY text escapes only backslashes in these lines (to_json escaped control characters).
    return b"".join(rows).replace(b"\\\\", b"\\")
