"""Building the events reports ingest, from the contracts every service already holds.

An event's id is derived from what it records (``stable_id``), not drawn at random: a service
that handles the same input twice — a result redelivered after a crash, a task sent twice —
makes the same event again, and reports count each event once (migration 0007). A delivery
has one ``queued``, one ``succeeded`` or ``failed``, one deferral per attempt, and one per
hold (prohibited hours) until a given time.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from postline.common.ids import new_id, stable_id
from postline.common.telemetry import current_trace_id
from postline.common.timeutil import to_timestamp
from postline.v1 import delivery_pb2, events_pb2
from postline.v1.events_pb2 import DeliveryStatus, ErrorSource, ErrorStatus


def delivery_event(
    delivery: delivery_pb2.AcceptedDelivery,
    status: DeliveryStatus.ValueType,
    at: float | Timestamp,
    *,
    result: delivery_pb2.DeliveryResult | None = None,
    attempt: int = 0,
    return_path: str = "",
    reason: str = "",
    error_status: int = 0,
    next_attempt_at: float | None = None,
) -> events_pb2.DeliveryEvent:
    event = events_pb2.DeliveryEvent(
        event_id=delivery_event_id(
            delivery.delivery_id, status, attempt, None if result is not None else next_attempt_at
        ),
        delivery_id=delivery.delivery_id,
        message_id=delivery.message_id,
        status=status,
        at=at if isinstance(at, Timestamp) else to_timestamp(at),
        accepted_at=delivery.accepted_at,
        server=delivery.server,
        api_user=delivery.api_user,
        envelope_from=delivery.envelope_from,
        recipient=delivery.recipient,
        recipient_domain=delivery.recipient_domain,
        subject=delivery.subject,
        api_data=delivery.api_data,
        return_path=return_path,
        header_message_id=delivery.header_message_id,
        attempt=attempt,
        reason=reason,
        error_status=error_status,
        trace_id=current_trace_id(),
    )
    if result is not None:
        # The envelope sender used on the wire (the VERP address the sender made): what the
        # delivery log shows as returnPath and bounces come back to.
        event.return_path = return_path or result.task.return_path
        event.reply_code = result.reply_code
        event.enhanced_status = result.enhanced_status
        event.mx_host = result.mx_host
        event.source_ip = result.source_ip
        event.reason = reason or result.reply_text
    if next_attempt_at is not None:
        event.next_attempt_at.CopyFrom(to_timestamp(next_attempt_at))
    return event


def queued_event(delivery: delivery_pb2.AcceptedDelivery) -> events_pb2.DeliveryEvent:
    """A delivery's ``queued`` event, at the moment it was accepted (the bounce service keeps
    its record of the delivery from it)."""
    return delivery_event(delivery, events_pb2.DELIVERY_STATUS_QUEUED, delivery.accepted_at)


def delivery_event_id(
    delivery_id: str,
    status: DeliveryStatus.ValueType,
    attempt: int,
    held_until: float | None = None,
) -> str:
    """The id of a delivery's event: one per final status, one deferral per attempt (a hold's
    per the time it holds until)."""
    if status != events_pb2.DELIVERY_STATUS_DEFERRED:
        return stable_id(delivery_id, status)
    if held_until is not None:
        return stable_id(delivery_id, status, attempt, "held", round(held_until * 1000))
    return stable_id(delivery_id, status, attempt)


def error_event(
    delivery: delivery_pb2.AcceptedDelivery,
    status: ErrorStatus.ValueType,
    created: float,
    *,
    source: ErrorSource.ValueType,
    reason: str,
    permanent: bool = True,
    reply_code: int = 0,
    enhanced_status: str = "",
    return_path: str = "",
    key: tuple[object, ...] | None = None,
) -> events_pb2.ErrorClassified:
    """An error-log row. With ``key`` (what makes this failure one: e.g. the attempt whose
    reply it classifies) its id is stable, so a failure handled twice is one row."""
    event_id = stable_id(delivery.delivery_id, "error", *key) if key is not None else new_id()
    return events_pb2.ErrorClassified(
        event_id=event_id,
        delivery_id=delivery.delivery_id,
        message_id=delivery.message_id,
        created=to_timestamp(created),
        status=status,
        to=delivery.recipient,
        header_message_id=delivery.header_message_id,
        return_path=return_path,
        subject=delivery.subject,
        api_data=delivery.api_data,
        reason=reason,
        source=source,
        permanent=permanent,
        reply_code=reply_code,
        enhanced_status=enhanced_status,
        server=delivery.server,
        api_user=delivery.api_user,
        trace_id=current_trace_id(),
        **{"from": delivery.envelope_from},
    )
