"""The reports API's view of webhooks: every attempt, searchable.

``GET /api/v1/webhooks/attempts?start=YYYY-MM-DD&end=YYYY-MM-DD[&tz=][&endpoint=][&outcome=]
[&webhook_id=][&page=]`` — newest first, the search answers' shape (the first 100, 10 per
page). An API user sees its own server's event endpoints and the inbound endpoints (these
belong to no server; their rows hold no mail content).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from fastapi import FastAPI, Request, Response

from postline.common.credentials import Principal
from postline.reports.params import (
    SearchError,
    format_instant,
    parse_choice,
    parse_positive,
    parse_range,
)
from postline.reports.queries import ReportQueries
from postline.reports.search import MAX_RESULTS, PAGE_SIZE
from postline.reports.store import Store
from postline.reports.webhooks.attempts import TABLE, Outcome

Answer = Callable[
    [Request, Callable[[Principal, dict[str, str]], Awaitable[Any]]], Awaitable[Response]
]
MAX_FILTER = 500


class WebhookAttempts:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def search(self, principal: Principal, params: Mapping[str, str]) -> dict[str, Any]:
        scoped = ReportQueries.scoped(principal, params)
        dates = parse_range(scoped)
        page = parse_positive(scoped, "page", 1, MAX_RESULTS // PAGE_SIZE)
        outcome = parse_choice(scoped, "outcome", tuple(str(o) for o in Outcome), None)
        sql_params: dict[str, Any] = {
            "start": dates.first_instant,
            "end": dates.end_instant,
            "server": scoped["server"],
        }
        where = [
            "at >= {start:DateTime64(3, 'UTC')}",
            "at < {end:DateTime64(3, 'UTC')}",
            "(server = {server:String} OR kind = 'inbound')",
        ]
        if outcome:
            where.append("outcome = {outcome:String}")
            sql_params["outcome"] = outcome
        for field, clause in (
            ("endpoint", "positionCaseInsensitive(endpoint, {endpoint:String}) > 0"),
            ("webhook_id", "webhook_id = {webhook_id:String}"),
        ):
            value = (scoped.get(field) or "").strip()
            if len(value) > MAX_FILTER:
                raise SearchError(field, f"{field} is at most {MAX_FILTER} characters")
            if value:
                where.append(clause)
                sql_params[field] = value
        sql = (
            "SELECT at, endpoint_id, endpoint, kind, owner, webhook_id, attempt, events, "
            "event_types, outcome, status_code, duration_ms, error, next_attempt_at "
            f"FROM {TABLE} WHERE {' AND '.join(where)} "
            f"ORDER BY at DESC, webhook_id LIMIT {MAX_RESULTS + 1}"
        )
        rows = await self.store.query(sql, sql_params)
        truncated = len(rows) > MAX_RESULTS
        rows = rows[:MAX_RESULTS]
        chunk = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        return {
            "results": [_row(r, dates.tz) for r in chunk],
            "total": len(rows),
            "truncated": truncated,
            "page": page,
            "pages": max(1, -(-len(rows) // PAGE_SIZE)),
        }


def _instant(value: datetime | None, tz: tzinfo) -> str | None:
    if value is None:
        return None
    return format_instant(value if value.tzinfo else value.replace(tzinfo=UTC), tz)


def _row(row: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    return {
        "at": _instant(row["at"], tz),
        "endpoint": row["endpoint"],
        "endpointId": row["endpoint_id"],
        "kind": row["kind"],
        "owner": row["owner"],
        "webhookId": row["webhook_id"],
        "attempt": int(row["attempt"]),
        "events": int(row["events"]),
        "eventTypes": list(row["event_types"]),
        "outcome": row["outcome"],
        "statusCode": int(row["status_code"]) or None,
        "durationMs": int(row["duration_ms"]),
        "error": row["error"] or None,
        "nextAttemptAt": _instant(row["next_attempt_at"], tz),
    }


def add_webhook_routes(app: FastAPI, answer: Answer, attempts: WebhookAttempts) -> None:
    @app.get("/api/v1/webhooks/attempts")
    async def webhook_attempts(request: Request) -> Response:
        """Webhook POSTs, newest first: start, end (YYYY-MM-DD) mandatory; tz, endpoint
        (part of the URL), outcome (delivered, rejected, timeout, unreachable, expired),
        webhook_id, page."""
        return await answer(request, attempts.search)
