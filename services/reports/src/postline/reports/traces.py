"""One trace, as ``GET /api/v1/traces/{trace_id}`` answers it and the console draws it.

The spans of the trace from ``postline.otel_traces`` (the time range from the trace-id lookup
table, so only those partitions are read), and the spans of other traces that link to it: a
bounce mail is its own SMTP transaction, days later, and its span links to the trace of each
delivery it reports on. Spans come oldest first (a parent starts before its children, so this
is causal order); times are ISO 8601 UTC with microseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from postline.common.semconv import SERVER

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

_SPAN_COLUMNS = (
    "TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, "
    "toUnixTimestamp64Nano(Timestamp) AS start_ns, Duration, StatusCode, StatusMessage, "
    "SpanAttributes, Links.TraceId, Links.SpanId, Links.Attributes, "
    "arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_ns, Events.Name, "
    "Events.Attributes"
)
# The lookup table's Start/End are whole seconds; a minute either side is plenty.
TRACE_SQL = (
    f"SELECT {_SPAN_COLUMNS} FROM postline.otel_traces "
    "WHERE TraceId = {trace_id:String} "
    "AND Timestamp >= {start:DateTime64(9, 'UTC')} AND Timestamp <= {end:DateTime64(9, 'UTC')} "
    "ORDER BY Timestamp LIMIT 1 BY SpanId"
)
RANGE_SQL = (
    "SELECT min(Start) AS first, max(End) AS last FROM postline.otel_traces_trace_id_ts "
    "WHERE TraceId = {trace_id:String} HAVING count() > 0"
)
LINKED_SQL = (
    f"SELECT {_SPAN_COLUMNS} FROM postline.otel_traces "
    "WHERE has(Links.TraceId, {trace_id:String}) AND TraceId != {trace_id:String} "
    "ORDER BY Timestamp LIMIT 1 BY SpanId LIMIT 1000"
)
MARGIN = timedelta(minutes=1)


def valid_trace_id(trace_id: str) -> bool:
    return bool(TRACE_ID.match(trace_id)) and trace_id != "0" * 32


def _instant(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1000 / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def span(row: dict[str, Any], trace_id: str) -> dict[str, Any]:
    """A stored span as the API answers it."""
    start = int(row["start_ns"])
    links = [
        {"trace_id": t, "span_id": s, "attributes": dict(a)}
        for t, s, a in zip(
            row["Links.TraceId"], row["Links.SpanId"], row["Links.Attributes"], strict=True
        )
    ]
    events = [
        {"name": n, "time": _instant(int(t)), "attributes": dict(a)}
        for t, n, a in zip(
            row["event_ns"], row["Events.Name"], row["Events.Attributes"], strict=True
        )
    ]
    return {
        "trace_id": row["TraceId"],
        "service": row["ServiceName"],
        "name": row["SpanName"],
        "span_id": row["SpanId"],
        "parent_span_id": row["ParentSpanId"],
        "start": _instant(start),
        "end": _instant(start + int(row["Duration"])),
        "duration_ms": round(int(row["Duration"]) / 1e6, 3),
        "kind": row["SpanKind"],
        "status": row["StatusCode"],
        "status_message": row["StatusMessage"],
        "attributes": dict(row["SpanAttributes"]),
        "links": links,
        "events": events,
        # A span of another trace that links here (a bounce mail about this delivery).
        "linked": row["TraceId"] != trace_id,
    }


def trace(
    trace_id: str,
    rows: list[dict[str, Any]],
    linked: list[dict[str, Any]],
    server: str | None,
) -> dict[str, Any] | None:
    """The answer, or None when nothing of the trace is stored (or, for an API user, when no
    span of it belongs to the user's server)."""
    spans = [span(r, trace_id) for r in rows] + [span(r, trace_id) for r in linked]
    if not spans:
        return None
    own = [s for s in spans if not s["linked"]]
    if server is not None and not any(s["attributes"].get(SERVER) == server for s in own):
        return None
    spans.sort(key=lambda s: (s["start"], s["linked"]))
    return {"traceId": trace_id, "spans": spans}
