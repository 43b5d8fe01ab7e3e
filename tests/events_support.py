"""Reading events as services publish them: alone, or several to a broker message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from postline.common.broker import Event
from postline.common.broker.consumer import decode
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
