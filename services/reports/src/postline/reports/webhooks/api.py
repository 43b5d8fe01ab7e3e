"""The reports API's view of webhooks: every attempt, searchable.

``GET /api/v1/webhooks/attempts?start=YYYY-MM-DD&end=YYYY-MM-DD[&tz=][&server=][&endpoint=]
[&outcome=][&webhook_id=][&page=]`` — newest first, the searches' shape (the first 100, 10 per
page). An API user sees its own server's event endpoints and the inbound endpoints (these
belong to no server; their rows hold no mail content); a console account every server's, or
the one asked for (and the inbound endpoints).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request, Response
from pydantic import BaseModel, Field

from postline.reports import api_models as m
from postline.reports.access import Caller
from postline.reports.params import (
    format_instant,
    parse_choice,
    parse_positive,
    parse_range,
    parse_text,
)
from postline.reports.queries import ReportQueries
from postline.reports.search import MAX_RESULTS, PAGE_SIZE
from postline.reports.webhooks.attempts import TABLE, PostOutcome

MAX_FILTER = 500
OUTCOMES = tuple(str(o) for o in PostOutcome)


class AttemptSearch(m.Range):
    endpoint: Annotated[
        str | None,
        Field(max_length=MAX_FILTER, description="part of the endpoint's URL (case-insensitive)"),
    ] = None
    outcome: Annotated[
        Literal["delivered", "rejected", "timeout", "unreachable", "expired"] | None,
        Field(description="what came of the attempt"),
    ] = None
    webhook_id: Annotated[
        str | None, Field(max_length=MAX_FILTER, description="one webhook (its webhook-id)")
    ] = None
    page: Annotated[int | None, Field(ge=1, le=MAX_RESULTS // PAGE_SIZE, description="from 1")] = (
        None
    )


class AttemptRow(BaseModel):
    at: str = Field(description="when the POST was made (ISO 8601 in tz)")
    endpoint: str = Field(description="the URL without credentials or query")
    endpointId: str = Field(description="names the endpoint's queue, webhooks.<endpointId>")
    kind: str = Field(description="events or inbound")
    owner: str = Field(description="the server (events) or the domain (inbound)")
    webhookId: str
    attempt: int = Field(description="1 for the first POST of this webhook-id")
    events: int = Field(description="events in the body (1 for an inbound mail)")
    eventTypes: list[str]
    outcome: str = Field(description="delivered, rejected, timeout, unreachable or expired")
    statusCode: int | None = Field(description="the endpoint's HTTP status, if it answered")
    durationMs: int
    error: str | None
    nextAttemptAt: str | None = Field(description="when it is tried again, if it is")


class AttemptAnswer(BaseModel):
    results: list[AttemptRow]
    total: int = Field(description="matches shown, at most 100")
    truncated: bool = Field(description="more than 100 matched")
    page: int
    pages: int


class WebhookAttempts:
    def __init__(self, queries: ReportQueries) -> None:
        self.queries = queries

    async def search(self, caller: Caller, params: Mapping[str, str]) -> dict[str, Any]:
        scoped = self.queries.scoped(caller, params)
        dates = parse_range(scoped)
        page = parse_positive(scoped, "page", 1, MAX_RESULTS // PAGE_SIZE)
        sql_params: dict[str, Any] = {"start": dates.first_instant, "end": dates.end_instant}
        where = ["at >= {start:DateTime64(3, 'UTC')}", "at < {end:DateTime64(3, 'UTC')}"]
        if scoped.get("server"):
            where.append("(server = {server:String} OR kind = 'inbound')")
            sql_params["server"] = scoped["server"]
        outcome = parse_choice(scoped, "outcome", OUTCOMES, None)
        if outcome:
            where.append("outcome = {outcome:String}")
            sql_params["outcome"] = outcome
        for field, clause in (
            ("endpoint", "positionCaseInsensitive(endpoint, {endpoint:String}) > 0"),
            ("webhook_id", "webhook_id = {webhook_id:String}"),
        ):
            value = (parse_text(scoped, field, MAX_FILTER) or "").strip()
            if value:
                where.append(clause)
                sql_params[field] = value
        sql = (
            "SELECT at, endpoint_id, endpoint, kind, owner, webhook_id, attempt, events, "
            "event_types, outcome, status_code, duration_ms, error, next_attempt_at "
            f"FROM {TABLE} WHERE {' AND '.join(where)} "
            f"ORDER BY at DESC, webhook_id LIMIT {MAX_RESULTS + 1}"
        )
        rows = await self.queries.store.query(sql, sql_params)
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


Answer = Callable[[Request, Callable[[Caller], Awaitable[Any]]], Awaitable[Response]]
Documented = Callable[..., dict[int | str, dict[str, Any]]]


def add_webhook_routes(
    app: FastAPI, answer: Answer, documented: Documented, attempts: WebhookAttempts
) -> None:
    @app.get("/api/v1/webhooks/attempts", responses=documented(AttemptAnswer))
    async def webhook_attempts(request: Request, q: Annotated[AttemptSearch, Query()]) -> Response:
        """Every POST to a webhook endpoint (events or inbound mail), newest first: the first
        100 matches, 10 per page."""
        return await answer(request, lambda c: attempts.search(c, q.as_text()))
