"""Export rows -> CSV lines or NDJSON lines (pure generators), and export file names.

The column set is documented and stable (see EXPORT_COLUMNS). No I/O, no database, no web.
CSV cells that a spreadsheet would evaluate as a formula are neutralised with a leading quote.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

# (CSV header / NDJSON key, source field). Order is the documented column order.
EXPORT_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("time", "stage_at"),
    ("cluster", "cluster"),
    ("verb", "verb"),
    ("resource", "resource"),
    ("subresource", "subresource"),
    ("namespace", "namespace"),
    ("name", "name"),
    ("user", "username"),
    ("impersonated_user", "impersonated_user"),
    ("groups", "user_groups"),
    ("source_ips", "source_ips"),
    ("user_agent", "user_agent"),
    ("code", "response_code"),
    ("decision", "authz_decision"),
    ("audit_id", "audit_id"),
    ("stage", "stage"),
    ("event_url", "id"),
)
CSV_HEADER: Final = tuple(header for header, _ in EXPORT_COLUMNS)
# Excel reads UTF-8 CSV as such only with a byte-order mark; csv readers use "utf-8-sig".
UTF8_BOM: Final = "\ufeff"
# A spreadsheet treats a cell starting with one of these as a formula (or as a DDE command).
FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r", "\n")
LIST_SEPARATOR: Final = ";"
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_FILENAME_FILTER_CHARS: Final = 120


def neutralise_formula(cell: str) -> str:
    """Prefix a cell that a spreadsheet would evaluate with a single quote (OWASP advice)."""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def export_record(row: Mapping[str, Any], *, base_url: str) -> dict[str, Any]:
    """One stored row as the export's JSON-ready record (keys: the CSV header names)."""
    record: dict[str, Any] = {}
    for header, field in EXPORT_COLUMNS:
        value = row.get(field)
        if field == "id":
            value = f"{base_url.rstrip('/')}/changes/{value}"
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        record[header] = value
    return record


def csv_cell(value: Any) -> str:
    """A value as a CSV cell: lists joined with ';', formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = LIST_SEPARATOR.join(str(item) for item in value)
    return neutralise_formula(str(value))


def csv_line(cells: Sequence[str]) -> str:
    """One RFC 4180 line (CRLF) of cells."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()


def csv_header() -> str:
    """The CSV's first line: a UTF-8 byte-order mark and the column names."""
    return UTF8_BOM + csv_line(CSV_HEADER)


def csv_row(row: Mapping[str, Any], *, base_url: str) -> str:
    """One RFC 4180 line for a row; lists joined with ';', formulas neutralised."""
    record = export_record(row, base_url=base_url)
    return csv_line([csv_cell(record[header]) for header in CSV_HEADER])


def ndjson_row(row: Mapping[str, Any], *, base_url: str) -> str:
    """One JSON object and newline for a row, with the CSV header names as keys."""
    return json.dumps(export_record(row, base_url=base_url), ensure_ascii=False) + "\n"


def csv_lines(rows: Iterable[Mapping[str, Any]], *, base_url: str) -> Iterator[str]:
    """The header line, then one line per row."""
    yield csv_header()
    for row in rows:
        yield csv_row(row, base_url=base_url)


def ndjson_lines(rows: Iterable[Mapping[str, Any]], *, base_url: str) -> Iterator[str]:
    """One JSON line per row."""
    for row in rows:
        yield ndjson_row(row, base_url=base_url)


def export_filename(filters: Mapping[str, Any], *, at: datetime, extension: str) -> str:
    """A file name stating the filter and the export time, safe for any file system."""
    parts = ["audit-events"]
    for key, value in filters.items():
        if value in (None, "", [], ()):
            continue
        values = value if isinstance(value, list | tuple) else [value]
        text = "+".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)
        parts.append(f"{key}-{text}")
    summary = _FILENAME_UNSAFE.sub("_", "_".join(parts))[:_MAX_FILENAME_FILTER_CHARS]
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{summary}_{stamp}.{extension}"
