"""One delivery's full history, and the live view of today's latest deliveries."""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from postline.reports.params import format_instant
from postline.reports.search import report_row

LIVE_ROWS = 100

_TS = "DateTime64(3, 'UTC')"

# Every event once (a re-delivered event is a duplicate row until merged), oldest first.
HISTORY_EVENTS_SQL = (
    "SELECT event_id, status, at, accepted_at, server, api_user, envelope_from, recipient, "
    "message_id, subject, api_data, return_path, header_message_id, attempt, reply_code, "
    "enhanced_status, reason, mx_host, source_ip, error_status, next_attempt_at, trace_id "
    "FROM postline.delivery_events WHERE delivery_id = {delivery_id:String}{scope} "
    "ORDER BY at, event_id LIMIT 1 BY event_id"
)
HISTORY_ERRORS_SQL = (
    "SELECT event_id, created, status, reason, source, permanent, reply_code, enhanced_status, "
    "trace_id FROM postline.error_log WHERE delivery_id = {delivery_id:String}{scope} "
    "ORDER BY created, event_id LIMIT 1 BY event_id"
)


def history_sql(delivery_id: str, server: str | None) -> tuple[str, str, dict[str, Any]]:
    params: dict[str, Any] = {"delivery_id": delivery_id}
    scope = ""
    if server:
        scope = " AND server = {server:String}"
        params["server"] = server
    return (
        HISTORY_EVENTS_SQL.replace("{scope}", scope),
        HISTORY_ERRORS_SQL.replace("{scope}", scope),
        params,
    )


def _instant(value: datetime | None, tz: tzinfo) -> str | None:
    return format_instant(value, tz) if value is not None else None


def history(
    delivery_id: str,
    events: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    tz: tzinfo,
) -> dict[str, Any] | None:
    """The delivery as of its latest event, with every event and every classified error."""
    if not events and not errors:
        return None
    first = events[0] if events else None
    latest = events[-1] if events else None
    return {
        "deliveryId": delivery_id,
        "messageId": first["header_message_id"] if first else "",
        "id": first["message_id"] if first else "",
        "server": first["server"] if first else "",
        "apiUser": first["api_user"] if first else "",
        "from": first["envelope_from"] if first else "",
        "to": first["recipient"] if first else "",
        "subject": first["subject"] if first else "",
        "apiData": first["api_data"] if first else "",
        "returnPath": next((e["return_path"] for e in events if e["return_path"]), ""),
        "headerMessageId": first["header_message_id"] if first else "",
        "created": _instant(first["accepted_at"], tz) if first else None,
        "status": latest["status"] if latest else None,
        "traceId": latest["trace_id"] if latest else errors[0]["trace_id"],
        "events": [
            {
                "eventId": e["event_id"],
                "at": _instant(e["at"], tz),
                "status": e["status"],
                "attempt": e["attempt"],
                "replyCode": e["reply_code"],
                "enhancedStatus": e["enhanced_status"],
                "reason": e["reason"],
                "mxHost": e["mx_host"],
                "sourceIp": e["source_ip"],
                "errorStatus": e["error_status"],
                "nextAttemptAt": _instant(e["next_attempt_at"], tz),
                "traceId": e["trace_id"],
            }
            for e in events
        ],
        "errors": [
            {
                "eventId": e["event_id"],
                "created": _instant(e["created"], tz),
                "status": e["status"],
                "reason": e["reason"],
                "source": e["source"],
                "permanent": bool(e["permanent"]),
                "replyCode": e["reply_code"],
                "enhancedStatus": e["enhanced_status"],
                "traceId": e["trace_id"],
            }
            for e in errors
        ],
    }


ERROR_SQL = (
    "SELECT created, status, envelope_from, recipient, message_id, header_message_id, "
    "return_path, subject, api_data, reason, delivery_id, trace_id, event_id, source, "
    "reply_code, enhanced_status, server, api_user "
    "FROM postline.error_log WHERE event_id = {event_id:String}{scope} LIMIT 1"
)


def error_sql(event_id: str, server: str | None) -> tuple[str, dict[str, Any]]:
    """One error-log row by its id (the ``event_id`` bloom filter of migration 0006)."""
    params: dict[str, Any] = {"event_id": event_id}
    scope = ""
    if server:
        scope = " AND server = {server:String}"
        params["server"] = server
    return ERROR_SQL.replace("{scope}", scope), params


def live_sql(
    now: datetime, tz: tzinfo, server: str | None, api_user: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The newest deliveries accepted today (in ``tz``), each in its current state."""
    today = now.astimezone(tz).date()
    params: dict[str, Any] = {
        "start": datetime.combine(today, time(), tz),
        "end": datetime.combine(today + timedelta(days=1), time(), tz),
    }
    scope = []
    if server:
        scope.append("server = {server:String}")
        params["server"] = server
    if api_user:
        scope.append("api_user = {api_user:String}")
        params["api_user"] = api_user
    prewhere = " PREWHERE " + " AND ".join(scope) if scope else ""
    sql = (
        "SELECT created, updated, status, envelope_from, recipient, message_id, header_message_id, "
        "return_path, "
        "subject, api_data, reason, delivery_id, trace_id, attempt, reply_code, "
        f"enhanced_status FROM postline.delivery_log FINAL{prewhere} "
        f"WHERE created >= {{start:{_TS}}} AND created < {{end:{_TS}}} "
        f"ORDER BY created DESC, delivery_id DESC LIMIT {LIVE_ROWS} "
        "SETTINGS do_not_merge_across_partitions_select_final = 1"
    )
    return sql, params


def live_row(row: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    return {
        **report_row(row, tz),
        "updated": format_instant(row["updated"], tz),
        "attempt": row["attempt"],
        "replyCode": row["reply_code"],
        "enhancedStatus": row["enhanced_status"],
    }
