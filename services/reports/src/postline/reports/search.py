"""Delivery-log and error-log search with the hosted service's rules.

``start`` and ``end`` (YYYY-MM-DD, inclusive) are mandatory; ``address`` is a case-insensitive
partial match on the recipient; at most the first 100 results, 10 per page, and ``truncated``
says there were more. Newest first.

How the SQL stays fast at tens of millions of rows (measured in bench/reports):

- both logs are sorted by ``(created, id)``, so ``ORDER BY created DESC ... LIMIT 101`` reads
  backwards and stops early, FINAL included;
- the delivery log holds one row per state change until ClickHouse merges them, and FINAL
  keeps the latest. Filters on what never changes for a delivery (server, API user, recipient)
  go to PREWHERE, before FINAL, so non-matching rows are never merged; so does a final status
  (succeeded, failed): the version ranks it above every other state, so a delivery with such a
  row has that status. ``queued`` and ``deferred`` are checked after FINAL, among the
  deliveries that ever had that status;
- the address match is ``lowerUTF8(recipient) LIKE '%...%'``, which the ``recipient_text``
  index (trigrams of the lowercased recipient) answers by reading only the granules that hold
  every trigram of the pattern.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from postline.reports.params import (
    DateRange,
    SearchError,
    format_instant,
    parse_range,
    parse_text,
    parse_whole,
)

__all__ = [
    "CSV_FIELDS",
    "DELIVERY_STATUSES",
    "ERROR_STATUSES",
    "MAX_RESULTS",
    "PAGE_SIZE",
    "Cursor",
    "SearchError",
    "SearchQuery",
    "deliveries_sql",
    "errors_sql",
    "like_pattern",
    "page_of",
    "parse_query",
    "report_row",
]

MAX_RESULTS = 100
PAGE_SIZE = 10
MAX_PAGE = 100_000  # pages past the last answer no rows
DELIVERY_STATUSES = ("queued", "deferred", "succeeded", "failed")
FINAL_STATUSES = ("succeeded", "failed")
ERROR_STATUSES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99)
CSV_FIELDS = (
    "created",
    "status",
    "from",
    "to",
    "messageId",
    "returnPath",
    "subject",
    "apiData",
    "reason",
)

_TS = "DateTime64(3, 'UTC')"
_COLUMNS = (
    "created, status, envelope_from, recipient, message_id, header_message_id, return_path, "
    "subject, api_data, reason, delivery_id, trace_id"
)


@dataclass(frozen=True)
class SearchQuery:
    start: date
    end: date
    status: str | None = None
    address: str | None = None
    server: str | None = None
    api_user: str | None = None
    page: int = 1
    tz: tzinfo = UTC

    @property
    def range(self) -> DateRange:
        return DateRange(self.start, self.end, self.tz)


@dataclass(frozen=True)
class Cursor:
    """Where the previous chunk of a full export ended (keyset pagination)."""

    created: datetime
    id: str


def parse_query(params: Mapping[str, str], *, kind: str) -> SearchQuery:
    """Validate query parameters (``kind`` is ``deliveries`` or ``errors``).

    The error log's status parameter is ``error`` (``status`` is accepted too)."""
    dates = parse_range(params)
    if kind == "errors":
        status = params.get("error") or params.get("status") or None
        if status is not None and (
            not (status.isascii() and status.isdigit() and len(status) <= 3)
            or int(status) not in ERROR_STATUSES
        ):
            raise SearchError("error", "error must be an error status: 1-10 or 99", "choice")
    else:
        status = params.get("status") or None
        if status is not None and status not in DELIVERY_STATUSES:
            raise SearchError(
                "status", f"status must be one of {', '.join(DELIVERY_STATUSES)}", "choice"
            )
    return SearchQuery(
        start=dates.start,
        end=dates.end,
        status=status,
        address=parse_text(params, "address"),
        server=parse_text(params, "server", 200),
        api_user=parse_text(params, "api_user", 200),
        page=parse_whole(params.get("page") or "1", "page", 1, MAX_PAGE),
        tz=dates.tz,
    )


def like_pattern(text: str) -> str:
    """``text`` with LIKE's wildcards escaped: the address is matched literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _scope(q: SearchQuery, params: dict[str, Any]) -> list[str]:
    """Filters on values a delivery (or an error row) never changes: safe before FINAL."""
    clauses = []
    if q.server:
        clauses.append("server = {server:String}")
        params["server"] = q.server
    if q.api_user:
        clauses.append("api_user = {api_user:String}")
        params["api_user"] = q.api_user
    if q.address:
        clauses.append("lowerUTF8(recipient) LIKE concat('%', lowerUTF8({address:String}), '%')")
        params["address"] = like_pattern(q.address)
    return clauses


def _after(after: Cursor | None, id_column: str, params: dict[str, Any]) -> list[str]:
    if after is None:
        return []
    params["after_created"] = after.created
    params["after_id"] = after.id
    return [
        f"created <= {{after_created:{_TS}}}",
        f"(created < {{after_created:{_TS}}} OR {id_column} < {{after_id:String}})",
    ]


def _sql(
    table: str,
    columns: str,
    prewhere: list[str],
    where: list[str],
    order: str,
    limit: int | None,
) -> str:
    sql = f"SELECT {columns} FROM postline.{table} FINAL"
    if prewhere:
        sql += " PREWHERE " + " AND ".join(prewhere)
    sql += " WHERE " + " AND ".join(where) + f" ORDER BY {order}"
    if limit:
        sql += f" LIMIT {limit}"
    # A delivery's rows share `created`, so they are always in the same partition.
    return sql + " SETTINGS do_not_merge_across_partitions_select_final = 1"


def deliveries_sql(
    q: SearchQuery, limit: int | None = MAX_RESULTS + 1, after: Cursor | None = None
) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"start": q.range.first_instant, "end": q.range.end_instant}
    dates = [f"created >= {{start:{_TS}}}", f"created < {{end:{_TS}}}"]
    prewhere = _scope(q, params) + _after(after, "delivery_id", params)
    where = list(dates)
    if q.status is not None:
        params["status"] = q.status
        if q.status in FINAL_STATUSES:
            prewhere.append("status = {status:String}")
        else:
            candidates = " AND ".join([*prewhere, *dates, "status = {status:String}"])
            where.append("status = {status:String}")
            where.append(
                "(created, delivery_id) IN (SELECT created, delivery_id "
                f"FROM postline.delivery_log WHERE {candidates})"
            )
    sql = _sql("delivery_log", _COLUMNS, prewhere, where, "created DESC, delivery_id DESC", limit)
    return sql, params


def errors_sql(
    q: SearchQuery, limit: int | None = MAX_RESULTS + 1, after: Cursor | None = None
) -> tuple[str, dict[str, Any]]:
    # Every column of an error row is fixed when it is written: FINAL only drops copies of a
    # re-delivered event, and every filter can run before it.
    params: dict[str, Any] = {"start": q.range.first_instant, "end": q.range.end_instant}
    prewhere = _scope(q, params) + _after(after, "event_id", params)
    if q.status is not None:
        prewhere.append("status = {status:UInt16}")
        params["status"] = int(q.status)
    where = [f"created >= {{start:{_TS}}}", f"created < {{end:{_TS}}}"]
    sql = _sql(
        "error_log", f"{_COLUMNS}, event_id", prewhere, where, "created DESC, event_id DESC", limit
    )
    return sql, params


def report_row(row: Mapping[str, Any], tz: tzinfo = UTC) -> dict[str, Any]:
    """A log row as the API and the CSV name its fields: ``messageId`` is the mail's
    ``Message-ID`` header (what the recipient's mail shows), ``id`` Postline's message id."""
    answer = {
        "created": format_instant(row["created"], tz),
        "status": row["status"],
        "from": row["envelope_from"],
        "to": row["recipient"],
        "messageId": row["header_message_id"],
        "returnPath": row["return_path"],
        "subject": row["subject"],
        "apiData": row["api_data"],
        "reason": row["reason"],
        "deliveryId": row["delivery_id"],
        "traceId": row["trace_id"],
        "id": row["message_id"],
    }
    if "event_id" in row:
        answer["eventId"] = row["event_id"]
    return answer


def page_of(rows: list[dict[str, Any]], page: int, tz: tzinfo = UTC) -> dict[str, Any]:
    truncated = len(rows) > MAX_RESULTS
    rows = rows[:MAX_RESULTS]
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    chunk = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return {
        "results": [report_row(r, tz) for r in chunk],
        "total": len(rows),
        "truncated": truncated,
        "page": page,
        "pages": pages,
    }
