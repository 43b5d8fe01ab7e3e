"""Delivery-log and error-log search with the hosted service's rules.

``start`` and ``end`` (YYYY-MM-DD, inclusive) are mandatory; ``address`` is a case-insensitive
partial match on the recipient; at most the first 100 results, 10 per page, and ``truncated``
says there were more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

MAX_RESULTS = 100
PAGE_SIZE = 10
DELIVERY_STATUSES = ("queued", "deferred", "succeeded", "failed")
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


class SearchError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SearchQuery:
    start: date
    end: date
    status: str | None = None
    address: str | None = None
    server: str | None = None
    api_user: str | None = None
    page: int = 1


def _date(field: str, value: str | None) -> date:
    if not value:
        raise SearchError(field, f"{field} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad_date(field, value)
    except ValueError:
        return _bad_date(field, value)


def _bad_date(field: str, value: str) -> date:
    raise SearchError(field, f"{field} must be a date as YYYY-MM-DD, got {value!r}")


def parse_query(params: dict[str, str], *, kind: str) -> SearchQuery:
    """Validate query parameters (``kind`` is ``deliveries`` or ``errors``)."""
    start, end = _date("start", params.get("start")), _date("end", params.get("end"))
    if end < start:
        raise SearchError("end", "end must not be before start")
    status = params.get("status") or None
    if status is not None:
        if kind == "deliveries" and status not in DELIVERY_STATUSES:
            raise SearchError("status", f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        if kind == "errors" and (not status.isdigit() or int(status) not in ERROR_STATUSES):
            raise SearchError("status", "error must be an error status: 1-10 or 99")
    page_text = params.get("page") or "1"
    if not page_text.isdigit() or int(page_text) < 1:
        raise SearchError("page", "page must be a whole number from 1")
    return SearchQuery(
        start=start,
        end=end,
        status=status,
        address=params.get("address") or None,
        server=params.get("server") or None,
        api_user=params.get("api_user") or None,
        page=int(page_text),
    )


def _where(q: SearchQuery, status_column: str, status_type: str) -> tuple[str, dict[str, Any]]:
    clauses = ["created >= {start:DateTime64(3, 'UTC')}", "created < {end:DateTime64(3, 'UTC')}"]
    params: dict[str, Any] = {
        "start": datetime.combine(q.start, time(), UTC),
        "end": datetime.combine(q.end + timedelta(days=1), time(), UTC),
    }
    if q.status is not None:
        clauses.append(f"{status_column} = {{status:{status_type}}}")
        params["status"] = q.status if status_type == "String" else int(q.status)
    if q.address:
        clauses.append("positionCaseInsensitive(recipient, {address:String}) > 0")
        params["address"] = q.address
    if q.server:
        clauses.append("server = {server:String}")
        params["server"] = q.server
    if q.api_user:
        clauses.append("api_user = {api_user:String}")
        params["api_user"] = q.api_user
    return " AND ".join(clauses), params


_COMMON = (
    "created, envelope_from, recipient, message_id, return_path, subject, api_data, reason, "
    "delivery_id, trace_id"
)


def deliveries_sql(
    q: SearchQuery, limit: int | None = MAX_RESULTS + 1
) -> tuple[str, dict[str, Any]]:
    where, params = _where(q, "status", "String")
    sql = (
        f"SELECT {_COMMON}, status FROM postline.delivery_log FINAL WHERE {where} "
        "ORDER BY created DESC, delivery_id"
    )
    return (sql + f" LIMIT {limit}" if limit else sql), params


def errors_sql(q: SearchQuery, limit: int | None = MAX_RESULTS + 1) -> tuple[str, dict[str, Any]]:
    where, params = _where(q, "status", "UInt16")
    sql = (
        f"SELECT {_COMMON}, status FROM postline.error_log FINAL WHERE {where} "
        "ORDER BY created DESC, event_id"
    )
    return (sql + f" LIMIT {limit}" if limit else sql), params


def report_row(row: dict[str, Any]) -> dict[str, Any]:
    created: datetime = row["created"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return {
        "created": created.astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "status": row["status"],
        "from": row["envelope_from"],
        "to": row["recipient"],
        "messageId": row["message_id"],
        "returnPath": row["return_path"],
        "subject": row["subject"],
        "apiData": row["api_data"],
        "reason": row["reason"],
        "deliveryId": row["delivery_id"],
        "traceId": row["trace_id"],
    }


def page_of(rows: list[dict[str, Any]], page: int) -> dict[str, Any]:
    truncated = len(rows) > MAX_RESULTS
    rows = rows[:MAX_RESULTS]
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    chunk = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return {
        "results": [report_row(r) for r in chunk],
        "total": len(rows),
        "truncated": truncated,
        "page": page,
        "pages": pages,
    }
