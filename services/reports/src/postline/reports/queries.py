"""Every reports query, once: the HTTP API and the gRPC service both call these.

Each method takes the authenticated principal and the request's parameters as strings,
validates them (``SearchError`` names the bad parameter), scopes them (an API user sees its own
server only: ``Forbidden`` for another) and answers plain data.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from postline.common.credentials import Principal
from postline.common.policy import Policy, PolicySource
from postline.reports.csv_export import export_csv
from postline.reports.history import history, history_sql, live_row, live_sql
from postline.reports.params import SearchError, parse_tz
from postline.reports.search import SearchQuery, deliveries_sql, errors_sql, page_of, parse_query
from postline.reports.stats import STATISTICS, parse_stats_query
from postline.reports.store import Store
from postline.reports.traces import (
    LINKED_SQL,
    MARGIN,
    RANGE_SQL,
    TRACE_SQL,
    trace,
    valid_trace_id,
)

KINDS = ("deliveries", "errors")


class Forbidden(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotFound(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ReportQueries:
    def __init__(
        self, store: Store, policy: PolicySource, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.policy_source = policy
        self.clock = clock

    @property
    def policy(self) -> Policy:
        """The policy as it is now (what takes the policy for later reads ``policy_source``)."""
        return self.policy_source()

    @staticmethod
    def scoped(principal: Principal, params: Mapping[str, str]) -> dict[str, str]:
        """The parameters limited to what the principal may see."""
        scoped = dict(params)
        asked = scoped.get("server")
        if asked and asked != principal.server:
            raise Forbidden("server", f"API user {principal.api_user} cannot read server {asked}")
        scoped["server"] = principal.server
        return scoped

    async def search(
        self, kind: str, principal: Principal, params: Mapping[str, str]
    ) -> dict[str, Any]:
        q = parse_query(self.scoped(principal, params), kind=kind)
        sql, sql_params = deliveries_sql(q) if kind == "deliveries" else errors_sql(q)
        return page_of(await self.store.query(sql, sql_params), q.page, q.tz)

    def export_query(
        self, kind: str, principal: Principal, params: Mapping[str, str]
    ) -> SearchQuery:
        """Validate an export before its first byte is sent (a stream cannot become a 400)."""
        q = parse_query(self.scoped(principal, params), kind=kind)
        if not self.policy.server(principal.server).csv_download:
            raise Forbidden(None, f"CSV download is disabled for server {principal.server}")
        return q

    def export(self, kind: str, q: SearchQuery) -> AsyncIterator[bytes]:
        return export_csv(self.store.rows, kind, q)

    async def stats(
        self, name: str, principal: Principal, params: Mapping[str, str]
    ) -> dict[str, Any]:
        statistic = STATISTICS.get(name)
        if statistic is None:
            raise NotFound(f"no statistic {name!r} (known: {', '.join(STATISTICS)})")
        q = parse_stats_query(statistic, self.scoped(principal, params))
        sql, sql_params = statistic.sql(q)
        rows = await self.store.run(lambda c: c.query(sql, parameters=sql_params).result_rows)
        return statistic.shape(q, [tuple(r) for r in rows]).as_json(q.dates)

    async def live(self, principal: Principal, params: Mapping[str, str]) -> dict[str, Any]:
        tz = parse_tz(params.get("tz"))
        scoped = self.scoped(principal, params)
        now = datetime.fromtimestamp(self.clock(), UTC)
        sql, sql_params = live_sql(now, tz, scoped["server"])
        rows = await self.store.query(sql, sql_params)
        return {"results": [live_row(r, tz) for r in rows], "total": len(rows)}

    async def trace(
        self, principal: Principal, trace_id: str, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """The spans of one trace (and of bounce mails linked to it); an API user sees a trace
        of its own server only."""
        trace_id = trace_id.strip().lower()
        if not valid_trace_id(trace_id):
            raise SearchError("trace_id", "a trace id is 32 hexadecimal digits")
        scoped = self.scoped(principal, params)
        found = await self.store.query(RANGE_SQL, {"trace_id": trace_id})
        rows: list[dict[str, Any]] = []
        if found:
            # Naive UTC, as ClickHouse answered them.
            first, last = found[0]["first"], found[0]["last"]
            bounds = {"trace_id": trace_id, "start": first - MARGIN, "end": last + MARGIN}
            rows = await self.store.query(TRACE_SQL, bounds)
        linked = await self.store.query(LINKED_SQL, {"trace_id": trace_id})
        answer = trace(trace_id, rows, linked, scoped["server"])
        if answer is None:
            raise NotFound(f"no stored trace {trace_id}")
        return answer

    async def history(
        self, principal: Principal, delivery_id: str, params: Mapping[str, str]
    ) -> dict[str, Any]:
        tz = parse_tz(params.get("tz"))
        if not delivery_id or len(delivery_id) > 200:
            raise SearchError("delivery_id", "a delivery id is required")
        scoped = self.scoped(principal, params)
        events_sql, errors_sql_, sql_params = history_sql(delivery_id, scoped["server"])
        events = await self.store.query(events_sql, sql_params)
        errors = await self.store.query(errors_sql_, sql_params)
        found = history(delivery_id, events, errors, tz)
        if found is None:
            raise NotFound(f"no delivery {delivery_id}")
        return found
