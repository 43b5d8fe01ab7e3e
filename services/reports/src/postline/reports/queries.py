"""Every reports query, once: the HTTP API, the console's pages and the gRPC service call
these.

Each method takes the caller and the request's parameters as strings, validates them
(``SearchError`` names the bad parameter), scopes them (an API user sees its own server only:
``Forbidden`` for another; a console account any server of the policy) and answers plain
data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from postline.common.policy import Policy, PolicySource
from postline.reports.access import Caller
from postline.reports.csv_export import open_export
from postline.reports.errors import Forbidden, NotFound
from postline.reports.history import error_sql, history, history_sql, live_row, live_sql
from postline.reports.params import SearchError, parse_text, parse_tz
from postline.reports.policy_view import policy_view
from postline.reports.search import SearchQuery, deliveries_sql, errors_sql, page_of, parse_query
from postline.reports.search import report_row as search_row
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

logger = logging.getLogger(__name__)

KINDS = ("deliveries", "errors")
MAX_ID = 200

__all__ = ["KINDS", "Forbidden", "NotFound", "ReportQueries"]


class ReportQueries:
    def __init__(
        self, store: Store, policy: PolicySource, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.policy_source = policy
        self.clock = clock

    @property
    def policy(self) -> Policy:
        """The policy as it is now (what keeps the policy for later takes ``policy_source``)."""
        return self.policy_source()

    def scoped(self, caller: Caller, params: Mapping[str, str]) -> dict[str, str]:
        """The parameters limited to what the caller may see."""
        scoped = dict(params)
        asked = parse_text(scoped, "server", 200)
        if caller.server is not None:
            if asked and asked != caller.server:
                raise Forbidden(f"API user {caller.name} cannot read server {asked}", "server")
            scoped["server"] = caller.server
        elif asked and asked not in self.policy.servers:
            raise SearchError(
                "server",
                f"server must be one of {', '.join(self.policy.servers)}",
                "choice",
            )
        return scoped

    def servers_of(self, caller: Caller, params: Mapping[str, str]) -> list[str]:
        """The servers a query covers: the one asked for, else every one the caller sees."""
        server = self.scoped(caller, params).get("server")
        return [server] if server else list(self.policy.servers)

    def csv_allowed(self, caller: Caller, params: Mapping[str, str]) -> bool:
        """CSV export is allowed when every server the query covers has ``csv_download``."""
        return all(self.policy.servers[s].csv_download for s in self.servers_of(caller, params))

    async def search(self, kind: str, caller: Caller, params: Mapping[str, str]) -> dict[str, Any]:
        q = parse_query(self.scoped(caller, params), kind=kind)
        sql, sql_params = deliveries_sql(q) if kind == "deliveries" else errors_sql(q)
        return page_of(await self.store.query(sql, sql_params), q.page, q.tz)

    def export_query(self, kind: str, caller: Caller, params: Mapping[str, str]) -> SearchQuery:
        """Validate an export before its first byte is sent (a stream cannot become a 400)."""
        q = parse_query(self.scoped(caller, params), kind=kind)
        if not self.csv_allowed(caller, params):
            raise Forbidden(f"CSV download is disabled for server {q.server or 'every server'}")
        return q

    async def export(self, kind: str, q: SearchQuery) -> AsyncIterator[bytes]:
        """The CSV, its first rows already read: a failure before the first row is an error
        the caller answers; a later one ends the stream with an exception (see csv_export)."""
        return await open_export(self.store.rows, kind, q)

    async def error(
        self, caller: Caller, event_id: str, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """One error-log row (the console's error detail)."""
        tz = parse_tz(params.get("tz"))
        if not event_id or len(event_id) > MAX_ID:
            raise SearchError("event_id", "an error id is required")
        sql, sql_params = error_sql(event_id, self.scoped(caller, params).get("server"))
        rows = await self.store.query(sql, sql_params)
        if not rows:
            raise NotFound(f"no error {event_id}")
        row = search_row(rows[0], tz)
        row["source"] = rows[0]["source"]
        row["replyCode"] = rows[0]["reply_code"]
        row["enhancedStatus"] = rows[0]["enhanced_status"]
        row["server"] = rows[0]["server"]
        row["apiUser"] = rows[0]["api_user"]
        return row

    async def stats(self, name: str, caller: Caller, params: Mapping[str, str]) -> dict[str, Any]:
        statistic = STATISTICS.get(name)
        if statistic is None:
            raise NotFound(f"no statistic {name[:40]!r} (known: {', '.join(STATISTICS)})")
        q = parse_stats_query(statistic, self.scoped(caller, params))
        sql, sql_params = statistic.sql(q)
        rows = await self.store.run(lambda c: c.query(sql, parameters=sql_params).result_rows)
        return statistic.shape(q, [tuple(r) for r in rows]).as_json(q.dates)

    async def live(self, caller: Caller, params: Mapping[str, str]) -> dict[str, Any]:
        tz = parse_tz(params.get("tz"))
        scoped = self.scoped(caller, params)
        now = datetime.fromtimestamp(self.clock(), UTC)
        sql, sql_params = live_sql(
            now, tz, scoped.get("server"), parse_text(scoped, "api_user", 200)
        )
        rows = await self.store.query(sql, sql_params)
        return {"results": [live_row(r, tz) for r in rows], "total": len(rows)}

    async def trace(
        self, caller: Caller, trace_id: str, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """The spans of one trace (and of bounce mails linked to it); an API user sees a trace
        of its own server only."""
        trace_id = trace_id.strip().lower()
        if not valid_trace_id(trace_id):
            raise SearchError("trace_id", "a trace id is 32 hexadecimal digits")
        scoped = self.scoped(caller, params)
        found = await self.store.query(RANGE_SQL, {"trace_id": trace_id})
        rows: list[dict[str, Any]] = []
        if found:
            # Naive UTC, as ClickHouse answered them.
            first, last = found[0]["first"], found[0]["last"]
            bounds = {"trace_id": trace_id, "start": first - MARGIN, "end": last + MARGIN}
            rows = await self.store.query(TRACE_SQL, bounds)
        linked = await self.store.query(LINKED_SQL, {"trace_id": trace_id})
        answer = trace(trace_id, rows, linked, scoped.get("server"))
        if answer is None:
            raise NotFound(f"no stored trace {trace_id}")
        return answer

    async def history(
        self, caller: Caller, delivery_id: str, params: Mapping[str, str]
    ) -> dict[str, Any]:
        tz = parse_tz(params.get("tz"))
        if not delivery_id or len(delivery_id) > MAX_ID:
            raise SearchError("delivery_id", "a delivery id is required")
        scoped = self.scoped(caller, params)
        events_sql, errors_sql_, sql_params = history_sql(delivery_id, scoped.get("server"))
        events = await self.store.query(events_sql, sql_params)
        errors = await self.store.query(errors_sql_, sql_params)
        found = history(delivery_id, events, errors, tz)
        if found is None:
            raise NotFound(f"no delivery {delivery_id}")
        return found

    def settings(self, caller: Caller, params: Mapping[str, str]) -> dict[str, Any]:
        """The running policy of each server the caller sees, without a secret or a hash."""
        return policy_view(self.policy, self.servers_of(caller, params))
