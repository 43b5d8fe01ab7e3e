"""Reading events and deliveries as services publish them: alone, or several to a broker
message (group commit)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf.message import Message

from postline.common.broker import Event, Topology
from postline.common.broker.consumer import decode
from postline.common.broker.groups import unbatch
from postline.common.ids import new_id
from postline.common.timeutil import to_timestamp
from postline.v1 import delivery_pb2, events_pb2

T = TypeVar("T", bound=Message)

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


def items_in(body: bytes, headers: Mapping[str, Any] | None, item: type[T]) -> list[T]:
    """The items of one class a broker message carries: itself, or a batch's (group commit)."""
    message = decode(body, headers or {}, item)
    items = unbatch(message)
    found = [i for i, _ in items] if items is not None else [message]
    assert all(isinstance(i, item) for i in found)
    return found  # type: ignore[return-value]


def deliveries_in(
    body: bytes, headers: Mapping[str, Any] | None
) -> list[delivery_pb2.AcceptedDelivery]:
    """The deliveries a message of a scheduler inbound queue carries (alone or batched)."""
    return items_in(body, headers, delivery_pb2.AcceptedDelivery)


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


class RecordingBroker:
    """What a notice (``postline.scheduler.notices``) publishes: its deliveries (grouped,
    confirmed) and their events."""

    def __init__(self) -> None:
        self.topology = Topology(4)
        self.deliveries: list[delivery_pb2.AcceptedDelivery] = []
        self.events: list[Any] = []

    async def publish_grouped(self, routing_key: str, item: Any) -> None:
        self.deliveries.append(item)

    async def publish_events(self, events: list[Any], *, linger: float = 0.0) -> None:
        self.events.extend(events)
