"""``errors.csv`` and ``deliveries.csv``: every match of a search, streamed.

UTF-8 without a byte-order mark, LF line ends, the header of the design; a field holding a
comma, a double quote or a line break is quoted with its quotes doubled (RFC 4180). Rows come
newest first, like the search, in chunks read by keyset pagination on the logs' sort key: memory
stays flat however many rows match, and no query holds a ClickHouse thread for the whole
download.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import tzinfo
from typing import Any

from postline.reports.search import (
    CSV_FIELDS,
    Cursor,
    SearchQuery,
    deliveries_sql,
    errors_sql,
    report_row,
)

CHUNK_ROWS = 5000
HEADERS = {"errors": CSV_FIELDS, "deliveries": (*CSV_FIELDS, "deliveryId")}

Query = Callable[[str, dict[str, Any]], Awaitable[list[dict[str, Any]]]]


def csv_lines(rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows(rows)
    return buffer.getvalue()


def _fields(row: dict[str, Any], header: Sequence[str], tz: tzinfo) -> list[object]:
    shown = report_row(row, tz)
    return [shown[name] for name in header]


async def export_csv(query: Query, kind: str, q: SearchQuery) -> AsyncIterator[bytes]:
    """The CSV of every row matching ``q`` (``kind``: ``errors`` or ``deliveries``)."""
    header = HEADERS[kind]
    sql_for = deliveries_sql if kind == "deliveries" else errors_sql
    id_column = "delivery_id" if kind == "deliveries" else "event_id"
    yield csv_lines([header]).encode("utf-8")
    after: Cursor | None = None
    while True:
        sql, params = sql_for(q, CHUNK_ROWS, after)
        rows = await query(sql, params)
        if rows:
            yield csv_lines([_fields(r, header, q.tz) for r in rows]).encode("utf-8")
        if len(rows) < CHUNK_ROWS:
            return
        after = Cursor(rows[-1]["created"], rows[-1][id_column])
