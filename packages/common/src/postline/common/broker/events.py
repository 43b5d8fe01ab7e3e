"""Publishing events by group commit: events that are ready together travel together.

One RabbitMQ classic queue hands a consumer at most ~31,000 messages/s on two cores, whatever
the client, so at high volume events must travel several to a broker message. Waiting to fill
a batch would add latency when there is little traffic; instead each kind of event (delivery,
error) has a lane that publishes at once when it is idle, and while its publishes are in
flight collects what arrives, to publish it together as soon as one is confirmed. Under load
batches grow by themselves to the rate the broker confirms at; alone, an event travels alone.

A batch of one is the plain message (``DeliveryEvent``, ``ErrorClassified``), so nothing
changes at low load; several travel as ``DeliveryEvents`` / ``ErrorEvents``, whose consumers
accept both. Every waiter returns only once the message carrying its event was confirmed, or
raises ``BrokerUnavailable``: the same promise as ``Broker.publish``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from google.protobuf.message import Message as ProtoMessage

from postline.common.broker.errors import BrokerUnavailable
from postline.common.broker.topology import DELIVERY_EVENT_KEY, ERROR_EVENT_KEY
from postline.v1 import events_pb2

logger = logging.getLogger(__name__)

Event = events_pb2.DeliveryEvent | events_pb2.ErrorClassified
Publish = Callable[[str, ProtoMessage], Awaitable[None]]

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


_KINDS: dict[type[ProtoMessage], _Kind] = {
    events_pb2.DeliveryEvent: _Kind(DELIVERY_EVENT_KEY, events_pb2.DeliveryEvents),
    events_pb2.ErrorClassified: _Kind(ERROR_EVENT_KEY, events_pb2.ErrorEvents),
}


@dataclass(frozen=True, slots=True)
class _Waiting:
    event: Event
    done: asyncio.Future[None]
    # The publisher's trace context: a lone event is published in it, as before batching.
    context: contextvars.Context


class _Lane:
    """The events of one kind: those waiting for a publish, and the publishes in flight."""

    def __init__(
        self, kind: _Kind, publish: Publish, *, max_events: int, max_bytes: int, max_in_flight: int
    ) -> None:
        self.kind = kind
        self.publish = publish
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_in_flight = max_in_flight
        self.waiting: deque[_Waiting] = deque()
        self.in_flight: set[asyncio.Task[None]] = set()

    def add(self, event: Event) -> asyncio.Future[None]:
        done = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(event, done, contextvars.copy_context()))
        return done

    def dispatch(self) -> None:
        """Start publishing what waits, as far as the limit on publishes in flight allows."""
        while self.waiting and len(self.in_flight) < self.max_in_flight:
            batch = self._take()
            if not batch:
                return
            # A batch carries many traces (each event names its own trace_id), so it is
            # published outside all of them.
            context = batch[0].context if len(batch) == 1 else contextvars.Context()
            task = asyncio.get_running_loop().create_task(self._send(batch), context=context)
            self.in_flight.add(task)
            task.add_done_callback(self._sent)

    def _take(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        size = 0
        while self.waiting and len(batch) < self.max_events:
            waiting = self.waiting[0]
            if waiting.done.done():  # its publisher stopped waiting (cancelled)
                self.waiting.popleft()
                continue
            # Each event is a length-delimited field 1 of the batch: a tag, a length, the bytes.
            event_size = waiting.event.ByteSize() + 6
            if batch and size + event_size > self.max_bytes:
                break
            batch.append(self.waiting.popleft())
            size += event_size
        return batch

    async def _send(self, batch: list[_Waiting]) -> None:
        message: ProtoMessage
        if len(batch) == 1:
            message = batch[0].event
        else:
            message = self.kind.batch(events=[w.event for w in batch])
        try:
            await self.publish(self.kind.routing_key, message)
        except BrokerUnavailable as exc:
            _fail(batch, str(exc), exc)
        except asyncio.CancelledError:
            _fail(batch, "the broker connection closed before the confirm")
            raise
        except Exception as exc:
            logger.exception("%s: publishing %d events failed", self.kind.routing_key, len(batch))
            _fail(batch, f"publish failed: {exc!r}", exc)
        else:
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_result(None)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.dispatch()

    def fail_waiting(self, reason: str) -> None:
        _fail(self.waiting, reason)
        self.waiting.clear()


def _fail(batch: Iterable[_Waiting], reason: str, cause: BaseException | None = None) -> None:
    # One exception per waiter: a raised exception collects the traceback of where it is raised.
    for waiting in batch:
        if not waiting.done.done():
            error = BrokerUnavailable(reason)
            error.__cause__ = cause
            waiting.done.set_exception(error)


class EventPublisher:
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
        if min(max_events, max_bytes, max_in_flight) < 1:
            raise ValueError("the caps and the publishes in flight must be at least 1")
        self._lanes = {
            message_type: _Lane(
                kind,
                publish,
                max_events=max_events,
                max_bytes=max_bytes,
                max_in_flight=max_in_flight,
            )
            for message_type, kind in _KINDS.items()
        }
        self._closed = False

    async def publish(self, event: Event) -> None:
        """Publish one event; return once the broker confirmed the message carrying it."""
        lane = self._lane(event)
        done = lane.add(event)
        lane.dispatch()
        await done

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Publish events together: those of one kind go in one message (within the caps) if
        their lane is idle, else with the next group. Returns once every one was confirmed;
        raises ``BrokerUnavailable`` if any was not (others may have been published)."""
        lanes = [(self._lane(event), event) for event in events]
        waits = [lane.add(event) for lane, event in lanes]
        for lane in {id(lane): lane for lane, _ in lanes}.values():
            lane.dispatch()
        outcomes = await asyncio.gather(*waits, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _lane(self, event: Event) -> _Lane:
        if self._closed:
            raise BrokerUnavailable("the broker connection is closing")
        lane = self._lanes.get(type(event))
        if lane is None:
            raise TypeError(f"not an event: {type(event).__name__}")
        return lane

    async def close(self, timeout: float) -> None:
        """Take no more events; publish those waiting for up to ``timeout`` seconds, then fail
        the rest. Publishes still in flight end when the connection closes (see ``stop``)."""
        self._closed = True
        deadline = time.monotonic() + timeout
        while (in_flight := self._in_flight()) and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(in_flight, timeout=left)
        for lane in self._lanes.values():
            if lane.waiting:
                logger.warning(
                    "%s: %d events not published before closing",
                    lane.kind.routing_key,
                    len(lane.waiting),
                )
            lane.fail_waiting("the broker connection closed before the event was published")

    async def stop(self) -> None:
        """End the publishes still in flight: their waiters get ``BrokerUnavailable``."""
        in_flight = self._in_flight()
        for task in in_flight:
            task.cancel()
        if in_flight:
            await asyncio.wait(in_flight)

    def _in_flight(self) -> set[asyncio.Task[None]]:
        return {task for lane in self._lanes.values() for task in lane.in_flight}
