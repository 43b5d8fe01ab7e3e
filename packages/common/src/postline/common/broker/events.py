"""Publishing events by group commit: events that are ready together travel together.

One RabbitMQ classic queue hands a consumer at most ~31,000 messages/s on two cores, whatever
the client, so at high volume events must travel several to a broker message. Waiting to fill
a batch would add latency when there is little traffic; instead each kind of event (delivery,
error) has a lane that publishes at once when it is idle (once the event loop has run what
is ready now, ``groups.py``), and while its publishes are in flight collects what arrives, to
publish it together as soon as one is confirmed. Under load
batches grow by themselves to the rate the broker confirms at; alone, an event travels alone.

Delivery events have two lanes, by routing key: ``queued`` events (``event.delivery``, which
bounce reads too) and the later ones (``event.delivery.outcome``, which it does not need); see
``postline.common.broker.topology``.

A batch of one is the plain message (``DeliveryEvent``, ``ErrorClassified``), so nothing
changes at low load; several travel as ``DeliveryEvents`` / ``ErrorEvents``, whose consumers
accept both. Every waiter returns only once the message carrying its event was confirmed, or
raises ``BrokerUnavailable``: the same promise as ``Broker.publish``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from postline.common.broker.errors import BrokerUnavailable
from postline.common.broker.groups import Lane, Lanes, Publish, Waiting
from postline.common.broker.topology import (
    DELIVERY_EVENT_KEY,
    DELIVERY_OUTCOME_KEY,
    ERROR_EVENT_KEY,
)
from postline.common.telemetry import TRACEPARENTS_HEADER, sampled_traceparent
from postline.v1 import events_pb2

Event = events_pb2.DeliveryEvent | events_pb2.ErrorClassified

# ~300-600 bytes per event: 1,000 make a few hundred KB, far below RabbitMQ's message size
# limit (16 MiB from 4.0, 128 MiB before); the byte cap bounds batches of unusually long ones.
MAX_EVENTS = 1000
MAX_BYTES = 1 << 20
# Publishes of one kind in flight at once (see bench/README.md, "Event publishing").
MAX_IN_FLIGHT = 1


@dataclass(frozen=True)
class _Kind:
    routing_key: str
    batch: Callable[..., ProtoMessage]  # DeliveryEvents or ErrorEvents

    def batcher(self, waiting: Sequence[Waiting]) -> ProtoMessage:
        # The body stays a plain ProtobufList of events (reports hands it to ClickHouse as
        # it is); each event names its trace id, and the header below its sampled context.
        return self.batch(events=[w.item for w in waiting])

    @staticmethod
    def trace_headers(waiting: Sequence[Waiting]) -> dict[str, Any] | None:
        """The sampled traces of a batch's events, so reports records its insert in each
        (nothing when tracing is off: no event's context is sampled)."""
        sampled = [t for w in waiting if (t := sampled_traceparent(w.context))]
        return {TRACEPARENTS_HEADER: ",".join(sampled)} if sampled else None


_QUEUED = _Kind(DELIVERY_EVENT_KEY, events_pb2.DeliveryEvents)
_OUTCOME = _Kind(DELIVERY_OUTCOME_KEY, events_pb2.DeliveryEvents)
_ERROR = _Kind(ERROR_EVENT_KEY, events_pb2.ErrorEvents)
_KINDS = (_QUEUED, _OUTCOME, _ERROR)


def _kind(event: Event) -> _Kind:
    if isinstance(event, events_pb2.DeliveryEvent):
        return _QUEUED if event.status == events_pb2.DELIVERY_STATUS_QUEUED else _OUTCOME
    if isinstance(event, events_pb2.ErrorClassified):
        return _ERROR
    raise TypeError(f"not an event: {type(event).__name__}")


class EventPublisher(Lanes):
    """Group-commit publishing of ``DeliveryEvent`` and ``ErrorClassified`` (used through
    ``Broker.publish_event`` / ``Broker.publish_events``)."""

    def __init__(
        self,
        publish: Publish,
        *,
        max_events: int = MAX_EVENTS,
        max_bytes: int = MAX_BYTES,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        super().__init__()
        self.lanes = {
            kind.routing_key: Lane(
                kind.routing_key,
                kind.batcher,
                publish,
                max_items=max_events,
                max_bytes=max_bytes,
                max_in_flight=max_in_flight,
                headers=kind.trace_headers,
            )
            for kind in _KINDS
        }

    async def publish(self, event: Event) -> None:
        """Publish one event; return once the broker confirmed the message carrying it."""
        await self._lane(event).put(event)

    async def publish_many(self, events: Iterable[Event], *, linger: float = 0.0) -> None:
        """Publish events together: those of one kind go in one message (within the caps) if
        their lane is idle, else with the next group; with ``linger`` they may wait that long
        for others to go with (see ``groups.py``). Returns once every one was confirmed;
        raises ``BrokerUnavailable`` if any was not (others may have been published)."""
        if isinstance(events, (list, tuple)) and len(events) == 1:
            # One event (most decisions make one): no gather.
            await self._lane(events[0]).put(events[0], linger)
            return
        lanes = [(self._lane(event), event) for event in events]
        waits = [lane.add(event, linger) for lane, event in lanes]
        for lane in {id(lane): lane for lane, _ in lanes}.values():
            lane.dispatch_soon()
        outcomes = await asyncio.gather(*waits, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _lane(self, event: Event) -> Lane:
        if self.closed:
            raise BrokerUnavailable("the broker connection is closing")
        return self.lanes[_kind(event).routing_key]
