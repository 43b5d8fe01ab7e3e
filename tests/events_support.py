"""Reading events as services publish them: alone, or several to a broker message."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from postline.common.broker import Event
from postline.common.broker.consumer import decode
from postline.common.ids import new_id
from postline.common.timeutil import to_timestamp
from postline.v1 import events_pb2

EVENT_TYPES = {
    t.DESCRIPTOR.full_name: t
    for t in (
        events_pb2.DeliveryEvent,
        events_pb2.DeliveryEvents,
        events_pb2.ErrorClassified,
        events_pb2.ErrorEvents,
    )
}


def events_in(body: bytes, headers: Mapping[str, Any] | None) -> list[Event]:
    """The events a broker message carries, decoded as its ``x-postline-type`` says."""
    message = decode(body, headers or {}, EVENT_TYPES)
    if isinstance(message, events_pb2.DeliveryEvents | events_pb2.ErrorEvents):
        return list(message.events)
    assert isinstance(message, events_pb2.DeliveryEvent | events_pb2.ErrorClassified)
    return [message]


def delivery_event(
    recipient: str, status: int = events_pb2.DELIVERY_STATUS_QUEUED, **fields: Any
) -> events_pb2.DeliveryEvent:
    """An event of a new delivery to ``recipient``, now (``fields`` override its values)."""
    now = time.time()
    defaults: dict[str, Any] = dict(
        event_id=new_id(),
        delivery_id=new_id(),
        message_id=new_id(),
        status=status,
        at=to_timestamp(now),
        accepted_at=to_timestamp(now),
        server="default",
        api_user="dev",
        envelope_from="app@example.test",
        recipient=recipient,
        recipient_domain=recipient.rpartition("@")[2].lower(),
        subject="Your order",
        api_data="order-42",
        header_message_id=f"<{new_id()}@example.test>",
    )
    return events_pb2.DeliveryEvent(**{**defaults, **fields})
