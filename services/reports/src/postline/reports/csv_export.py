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
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from postline.reports.params import format_instant
from postline.reports.search import (
    CSV_FIELDS,
    Cursor,
    SearchQuery,
    deliveries_sql,
    errors_sql,
)

logger = logging.getLogger(__name__)

CHUNK_ROWS = 20_000
HEADERS = {"errors": CSV_FIELDS, "deliveries": (*CSV_FIELDS, "deliveryId")}
# The log columns behind each CSV field (created is formatted, the rest is copied).
COLUMNS = {
    "created": "created",
    "status": "status",
    "from": "envelope_from",
    "to": "recipient",
    "messageId": "header_message_id",
    "returnPath": "return_path",
    "subject": "subject",
    "apiData": "api_data",
    "reason": "reason",
    "deliveryId": "delivery_id",
}

Rows = tuple[Sequence[str], Sequence[Sequence[Any]]]
Query = Callable[[str, dict[str, Any]], Awaitable[Rows]]


def csv_lines(rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows(rows)
    return buffer.getvalue()


class ExportBroken(Exception):
    """A chunk after the first could not be read: the download must end visibly broken."""


async def open_export(query: Query, kind: str, q: SearchQuery) -> AsyncIterator[bytes]:
    """The CSV of every row matching ``q`` (``kind``: ``errors`` or ``deliveries``).

    The first chunk is read before this returns, so a failure there is an error answered
    before the first byte. A later failure raises :class:`ExportBroken` from the stream: the
    HTTP server then drops the connection without the final chunk of the chunked transfer,
    which every client reports as a truncated download, never as a shorter file."""
    sql_for = deliveries_sql if kind == "deliveries" else errors_sql
    sql, params = sql_for(q, CHUNK_ROWS, None)
    names, rows = await query(sql, params)
    return _stream(query, kind, q, names, rows)


async def _stream(
    query: Query, kind: str, q: SearchQuery, names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> AsyncIterator[bytes]:
    header = HEADERS[kind]
    yield csv_lines([header]).encode("utf-8")
    if not rows:
        return  # (an empty answer may come without column names)
    sql_for = deliveries_sql if kind == "deliveries" else errors_sql
    id_column = "delivery_id" if kind == "deliveries" else "event_id"
    position = {name: i for i, name in enumerate(names)}
    created = position["created"]
    copied = [position[COLUMNS[field]] for field in header[1:]]
    while True:
        if rows:
            # Rows stay tuples (a dict per row costs more than the rest together).
            lines = (
                [format_instant(row[created], q.tz), *(row[i] for i in copied)] for row in rows
            )
            yield csv_lines(lines).encode("utf-8")
        if len(rows) < CHUNK_ROWS:
            return
        last = rows[-1]
        after = Cursor(last[created], last[position[id_column]])
        sql, params = sql_for(q, CHUNK_ROWS, after)
        try:
            _, rows = await query(sql, params)
        except Exception as exc:
            logger.error("%s export broken off after a chunk: %s", kind, exc)
            raise ExportBroken(f"{kind} export broken off: {exc}") from exc
