"""What an event webhook delivers: the events services publish, as endpoints receive them.

========================  ==================================================================
webhook event             made of
========================  ==================================================================
``queued``                ``DeliveryEvent`` queued (ingress accepted the delivery)
``deferred``              ``DeliveryEvent`` deferred (a temporary failure, or a hold)
``succeeded``             ``DeliveryEvent`` succeeded (the destination accepted it)
``failed``                ``DeliveryEvent`` failed (a permanent failure, the resend period
                          over, a suppressed recipient)
``bounced``               ``ErrorClassified`` from a bounce mail (source bounce mail): the
                          destination accepted, then a DSN came back
``complained``            ``ComplaintReceived`` (a feedback report about the mail)
``suppressed``            ``SuppressionChange`` ADD (the recipient joined the suppression list)
========================  ==================================================================

Error-log rows of SMTP replies and of Postline's own decisions are not events of their own:
the ``deferred``/``failed`` event of the same attempt says it (with its error status).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from postline.common.broker.consumer import MessageTypes
from postline.common.timeutil import from_timestamp
from postline.reports.stats import ERROR_STATUS_NAMES
from postline.v1 import events_pb2, webhooks_pb2

EVENT_TYPES = (
    "queued",
    "deferred",
    "succeeded",
    "failed",
    "bounced",
    "complained",
    "suppressed",
)

_STATUS_TYPES = {
    events_pb2.DELIVERY_STATUS_QUEUED: "queued",
    events_pb2.DELIVERY_STATUS_DEFERRED: "deferred",
    events_pb2.DELIVERY_STATUS_SUCCEEDED: "succeeded",
    events_pb2.DELIVERY_STATUS_FAILED: "failed",
}

# What the fan-out queue carries (see ``Topology.declare_webhook_fanout``).
SOURCE_TYPES: MessageTypes = {
    t.DESCRIPTOR.full_name: t
    for t in (
        events_pb2.DeliveryEvent,
        events_pb2.DeliveryEvents,
        events_pb2.ErrorClassified,
        events_pb2.ErrorEvents,
        events_pb2.SuppressionChange,
        events_pb2.ComplaintReceived,
    )
}


def source_events(message: ProtoMessage) -> Iterable[ProtoMessage]:
    """The events of one broker message (a batch message holds several)."""
    if isinstance(message, events_pb2.DeliveryEvents | events_pb2.ErrorEvents):
        return message.events
    return (message,)


def webhook_event(source: ProtoMessage) -> webhooks_pb2.WebhookEvent | None:
    """The webhook event a published event makes, or None when it makes none."""
    if isinstance(source, events_pb2.DeliveryEvent):
        return _delivery(source)
    if isinstance(source, events_pb2.ErrorClassified):
        return _bounce(source) if source.source == events_pb2.ERROR_SOURCE_BOUNCE_MAIL else None
    if isinstance(source, events_pb2.ComplaintReceived):
        return _complaint(source)
    if isinstance(source, events_pb2.SuppressionChange):
        if source.action == events_pb2.SUPPRESSION_ACTION_ADD:
            return _suppression(source)
    return None


def _delivery(event: events_pb2.DeliveryEvent) -> webhooks_pb2.WebhookEvent | None:
    kind = _STATUS_TYPES.get(event.status)
    if kind is None:
        return None
    hook = webhooks_pb2.WebhookEvent(
        event_id=event.event_id,
        type=kind,
        at=event.at,
        server=event.server,
        api_user=event.api_user,
        delivery_id=event.delivery_id,
        message_id=event.message_id,
        header_message_id=event.header_message_id,
        sender=event.envelope_from,
        recipient=event.recipient,
        subject=event.subject,
        api_data=event.api_data,
        attempt=event.attempt,
        reply_code=event.reply_code,
        enhanced_status=event.enhanced_status,
        reason=event.reason,
        error_status=event.error_status,
        mx_host=event.mx_host,
        trace_id=event.trace_id,
    )
    if event.HasField("next_attempt_at"):
        hook.next_attempt_at.CopyFrom(event.next_attempt_at)
    return hook


def _bounce(error: events_pb2.ErrorClassified) -> webhooks_pb2.WebhookEvent:
    return webhooks_pb2.WebhookEvent(
        event_id=error.event_id,
        type="bounced",
        at=error.created,
        server=error.server,
        api_user=error.api_user,
        delivery_id=error.delivery_id,
        message_id=error.message_id,
        header_message_id=error.header_message_id,
        sender=getattr(error, "from"),
        recipient=error.to,
        subject=error.subject,
        api_data=error.api_data,
        reply_code=error.reply_code,
        enhanced_status=error.enhanced_status,
        reason=error.reason,
        error_status=error.status,
        permanent=error.permanent,
        trace_id=error.trace_id,
    )


def _complaint(complaint: events_pb2.ComplaintReceived) -> webhooks_pb2.WebhookEvent:
    return webhooks_pb2.WebhookEvent(
        event_id=complaint.event_id,
        type="complained",
        at=complaint.at,
        server=complaint.server,
        api_user=complaint.api_user,
        delivery_id=complaint.delivery_id,
        message_id=complaint.message_id,
        header_message_id=complaint.header_message_id,
        sender=complaint.envelope_from,
        recipient=complaint.recipient,
        subject=complaint.subject,
        api_data=complaint.api_data,
        feedback_type=complaint.feedback_type,
        trace_id=complaint.trace_id,
    )


def _suppression(change: events_pb2.SuppressionChange) -> webhooks_pb2.WebhookEvent:
    # A change has no id of its own; one made of what it is keeps a redelivery recognisable.
    key = f"{change.server}\0{change.address}\0{change.at.seconds}.{change.at.nanos}"
    hook = webhooks_pb2.WebhookEvent(
        event_id="sup-" + hashlib.sha256(key.encode()).hexdigest()[:32],
        type="suppressed",
        at=change.at,
        server=change.server,
        delivery_id=change.delivery_id,
        recipient=change.address,
        reason=change.reason,
    )
    if change.HasField("expires_at"):
        hook.expires_at.CopyFrom(change.expires_at)
    return hook


# --- JSON -----------------------------------------------------------------------------------


def iso(ts: Timestamp) -> str:
    """ISO 8601 in UTC with milliseconds, as the reports API writes instants."""
    at = datetime.fromtimestamp(from_timestamp(ts), UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_json(event: webhooks_pb2.WebhookEvent) -> dict[str, Any]:
    """One event of a webhook body (README, "Event webhooks"): the same keys for every type,
    null where the event has no value, then the keys of its type."""
    answer: dict[str, Any] = {
        "id": event.event_id,
        "type": event.type,
        "time": iso(event.at),
        "server": event.server,
        "api_user": event.api_user or None,
        "delivery_id": event.delivery_id or None,
        "message_id": event.message_id or None,
        "message_id_header": event.header_message_id or None,
        "sender": event.sender or None,
        "recipient": event.recipient,
        "subject": event.subject or None,
        "api_data": event.api_data or None,
        "reply": _reply(event),
        "error_status": event.error_status or None,
        "error_name": ERROR_STATUS_NAMES.get(event.error_status),
        "reason": event.reason or None,
        "trace_id": event.trace_id or None,
    }
    if event.type in ("deferred", "succeeded", "failed"):
        answer["attempt"] = event.attempt or None
        answer["mx_host"] = event.mx_host or None
    if event.type == "deferred":
        has_next = event.HasField("next_attempt_at")
        answer["next_attempt_at"] = iso(event.next_attempt_at) if has_next else None
    elif event.type == "bounced":
        answer["permanent"] = event.permanent
    elif event.type == "complained":
        answer["feedback_type"] = event.feedback_type or None
    elif event.type == "suppressed":
        answer["expires_at"] = iso(event.expires_at) if event.HasField("expires_at") else None
    return answer


def _reply(event: webhooks_pb2.WebhookEvent) -> dict[str, Any] | None:
    if not event.reply_code and not event.enhanced_status:
        return None
    return {
        "code": event.reply_code or None,
        "enhanced_status": event.enhanced_status or None,
        "text": event.reason or None,
    }


def events_body(created: Timestamp, events: Iterable[webhooks_pb2.WebhookEvent]) -> dict[str, Any]:
    """The JSON of a POST of events (Standard Webhooks' type / timestamp / data envelope)."""
    return {
        "type": "postline.events",
        "timestamp": iso(created),
        "data": {"events": [event_json(e) for e in events]},
    }


def chunks(
    events: list[webhooks_pb2.WebhookEvent], size: int
) -> Iterator[list[webhooks_pb2.WebhookEvent]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]
