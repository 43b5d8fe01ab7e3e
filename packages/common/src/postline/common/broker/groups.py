"""Group commit: messages that are ready together travel together, on any hop.

A broker message costs the same framing, routing, persistence, confirm, delivery and ack
whether it carries one delivery or fifty, so at volume it pays to carry several. Waiting to
fill a batch would add latency when there is little traffic; instead each *lane* (one routing
key) publishes as soon as the event loop has run what is ready now when it is idle (so the
items of one received batch, handled at once, go together rather than the first alone), and
while its publish is in flight collects what arrives, to publish it together as soon as the
broker confirmed. Under load batches grow by themselves to what arrives during one confirm;
alone, a message travels alone, as itself.

Every waiter returns only once the broker confirmed the message carrying its item, or raises
``BrokerUnavailable``: the same promise as ``Broker.publish``.

An item nobody waits for at once (ingress's ``queued`` events, published after the ``250``;
the scheduler's events, whose only waiter is the ack of the result or delivery they came of)
may *linger*: it lets its lane wait up to that long for others before it goes, so that more
travel in one broker message (each costs RabbitMQ, and every consumer, the same whatever it
carries). An item without linger sends whatever waits, lingering or not, as soon as the lane
may publish; closing the lanes sends what lingers at once.

Which items may travel together, and as what, is ``BATCHES``: an ``AcceptedDelivery`` in an
``AcceptedDeliveries``, a ``DeliveryResult`` in a ``DeliveryResults``, a backlogged or
granted ``DeliveryTask`` in a ``DeliveryTasks``. A consumer of such a queue
gets each item as if it had come alone (``unbatch`` and ``handle_items``, used by the typed
consumers) and acks the broker message once every item was handled. Events have their own
lanes, by kind (``events.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from postline.common.broker.errors import BrokerUnavailable
from postline.common.telemetry import extract_traceparent, traceparent_in
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)

# Broker.publish: a routing key, a message, and (keyword) extra headers.
Publish = Callable[..., Awaitable[None]]

# Item class -> (batch class, its repeated field of items). Each batch also has
# ``traceparents``, one per item.
BATCHES: dict[type[ProtoMessage], tuple[type[ProtoMessage], str]] = {
    delivery_pb2.AcceptedDelivery: (delivery_pb2.AcceptedDeliveries, "deliveries"),
    delivery_pb2.DeliveryResult: (delivery_pb2.DeliveryResults, "results"),
    # The scheduler's backlog queues (scheduler/backlogs.py) and its granted tasks to the
    # senders (scheduler/task_lanes.py: one lane per priority, a few tasks to a message).
    delivery_pb2.DeliveryTask: (delivery_pb2.DeliveryTasks, "tasks"),
}
_ITEMS_OF = {batch: field for batch, field in BATCHES.values()}
BATCH_NAMES = {batch.DESCRIPTOR.full_name: batch for batch, _ in BATCHES.values()}
# Every batch has its items as field 1 and their trace contexts as field 2 (``batch_items``;
# a test holds each batch to it): their tags, length-delimited (wire type 2).
_ITEM_TAG = bytes([1 << 3 | 2])
_TRACEPARENT_TAG = bytes([2 << 3 | 2])

# A few deliveries of ~5 KB per confirm is what load brings; the caps bound a batch's memory
# at the consumer, which handles its items at once.
MAX_ITEMS = 100
MAX_BYTES = 1 << 20
# Publishes of one lane in flight at once (see bench/README.md, "Event publishing").
MAX_IN_FLIGHT = 1


@dataclass(slots=True)
class Waiting:
    item: ProtoMessage
    done: asyncio.Future[None]
    # The publisher's trace context: a lone item is published in it.
    context: contextvars.Context
    _encoded: bytes | None = None

    def traceparent(self) -> str:
        return traceparent_in(self.context)

    def encoded(self) -> bytes:
        """The item's encoding, made once: its size decides what fits in a batch, and a
        batch is made of its items' encodings (``batch_items``)."""
        if self._encoded is None:
            self._encoded = self.item.SerializeToString()
        return self._encoded


@dataclass(frozen=True, slots=True)
class Encoded:
    """A message encoded already, as ``Broker.publish`` sends it: its full protobuf name (the
    ``x-postline-type`` header) and its bytes."""

    type_name: str
    body: bytes

    def decode(self) -> ProtoMessage:
        """The message these bytes are (a ``BATCHES`` batch)."""
        return BATCH_NAMES[self.type_name].FromString(self.body)


Batcher = Callable[[Sequence[Waiting]], ProtoMessage | Encoded]
# Extra AMQP headers for a batch (e.g. its items' trace contexts); None or {}: none.
BatchHeaders = Callable[[Sequence[Waiting]], dict[str, Any] | None]


def batch_items(waiting: Sequence[Waiting]) -> Encoded:
    """The ``BATCHES`` message carrying these items (all of one class), with their traces,
    encoded. A repeated field's encoding is its elements' one after the other, each a tag, a
    length and the element's own encoding (protobuf's wire format), so the batch is made of
    its items' encodings: the same bytes as copying each item into a batch message and
    encoding that, for less than half the work (a 5 KB task is not copied into the batch
    first; bench/README.md, "Round 9")."""
    batch, _ = BATCHES[type(waiting[0].item)]
    parts: list[bytes] = []
    append = parts.append
    for w in waiting:
        item = w.encoded()
        append(_ITEM_TAG)
        append(_varint(len(item)))
        append(item)
    for w in waiting:
        traceparent = w.traceparent().encode()
        append(_TRACEPARENT_TAG)
        append(_varint(len(traceparent)))
        append(traceparent)
    return Encoded(batch.DESCRIPTOR.full_name, b"".join(parts))


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:  # most items (a 5 KB delivery): two bytes
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Lane:
    """The items of one routing key: those waiting for a publish, and the publishes in flight."""

    def __init__(
        self,
        routing_key: str,
        batch: Batcher,
        publish: Publish,
        *,
        max_items: int = MAX_ITEMS,
        max_bytes: int = MAX_BYTES,
        max_in_flight: int = MAX_IN_FLIGHT,
        headers: BatchHeaders | None = None,
    ) -> None:
        if min(max_items, max_bytes, max_in_flight) < 1:
            raise ValueError("the caps and the publishes in flight must be at least 1")
        self.routing_key = routing_key
        self.batch = batch
        self.headers = headers
        self.publish = publish
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.max_in_flight = max_in_flight
        self.waiting: deque[Waiting] = deque()
        self.in_flight: set[asyncio.Task[None]] = set()
        # When what waits is to go (loop time): the earliest an item waiting asked for.
        self.due: float | None = None
        # uvloop's call_later gives a plain Handle (no ``when``) for a delay under a
        # millisecond, so the timer's time is kept here.
        self._timer: asyncio.Handle | None = None
        self._timer_due = 0.0
        self._soon: asyncio.Handle | None = None

    def add(self, item: ProtoMessage, linger: float = 0.0) -> asyncio.Future[None]:
        """Queue ``item``; it goes within ``linger`` seconds (with ``dispatch``)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.waiting.append(Waiting(item, done, contextvars.copy_context()))
        due = loop.time() + linger if linger > 0 else 0.0
        self.due = due if self.due is None else min(self.due, due)
        return done

    async def put(self, item: ProtoMessage, linger: float = 0.0) -> None:
        """Queue ``item`` (it may wait ``linger`` for others) and start publishing; return once
        the broker confirmed the message carrying it (raises ``BrokerUnavailable`` if it was
        not)."""
        done = self.add(item, linger)
        self.dispatch_soon()
        await done

    def dispatch_soon(self) -> None:
        """``dispatch`` once the event loop has run what is ready now: items that become ready
        in the same pass of the loop (the items of one received batch, the deliveries one
        result lets through) go together even when the lane is idle, not the first alone and
        the rest after its confirm."""
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_soon(self._dispatch_soon)

    def _dispatch_soon(self) -> None:
        self._soon = None
        self.dispatch()

    def dispatch(self) -> None:
        """Start publishing what waits and is due, as far as the limit on publishes in flight
        allows; what lingers goes when its time comes (or earlier, with an item that is due)."""
        if not self.waiting:
            self.due = None
        elif self.due and self.due > (now := asyncio.get_running_loop().time()):
            self._wake_at(self.due, now)
            return
        while self.waiting and len(self.in_flight) < self.max_in_flight:
            batch = self._take()
            if not batch:
                return
            # A batch carries many traces (each item names its own), so it is published
            # outside all of them.
            context = batch[0].context if len(batch) == 1 else contextvars.Context()
            task = asyncio.get_running_loop().create_task(self._send(batch), context=context)
            self.in_flight.add(task)
            task.add_done_callback(self._sent)
            abandon = functools.partial(_abandon, task, batch)
            for waiting in batch:
                waiting.done.add_done_callback(abandon)
        if not self.waiting:
            self.due = None  # (what is left waiting is due: it goes after a confirm)

    def send_now(self) -> None:
        """Publish what lingers without waiting for its time (closing)."""
        if self.waiting:
            self.due = 0.0
        self.dispatch()

    def _wake_at(self, due: float, now: float) -> None:
        if self._timer is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(due - now, self._wake)
        self._timer_due = due

    def _wake(self) -> None:
        self._timer = None
        self.dispatch()

    def _take(self) -> list[Waiting]:
        batch: list[Waiting] = []
        size = 0
        while self.waiting and len(batch) < self.max_items:
            waiting = self.waiting[0]
            if waiting.done.done():  # its publisher stopped waiting (cancelled)
                self.waiting.popleft()
                continue
            # Each item is a length-delimited field of the batch: a tag, a length, the bytes
            # (encoded here once: working out the size alone costs as much as encoding).
            item_size = len(waiting.encoded()) + 6
            if batch and size + item_size > self.max_bytes:
                break
            batch.append(self.waiting.popleft())
            size += item_size
        return batch

    async def _send(self, batch: list[Waiting]) -> None:
        message = batch[0].item if len(batch) == 1 else self.batch(batch)
        headers = self.headers(batch) if self.headers is not None and len(batch) > 1 else None
        try:
            if headers:
                await self.publish(self.routing_key, message, headers=headers)
            else:
                await self.publish(self.routing_key, message)
        except BrokerUnavailable as exc:
            _fail(batch, str(exc), exc)
        except asyncio.CancelledError:
            _fail(batch, "the broker connection closed before the confirm")
            raise
        except Exception as exc:
            logger.exception("%s: publishing %d items failed", self.routing_key, len(batch))
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
        self.due = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _abandon(task: asyncio.Task[None], batch: Sequence[Waiting], _: object) -> None:
    # Once no waiter of a batch waits any more (each publisher gave up: its client was told to
    # try again), a publish still waiting for the connection is dropped rather than sent late.
    if not task.done() and all(w.done.cancelled() for w in batch):
        task.cancel()


def _fail(batch: Iterable[Waiting], reason: str, cause: BaseException | None = None) -> None:
    # One exception per waiter: a raised exception collects the traceback of where it is raised.
    for waiting in batch:
        if not waiting.done.done():
            error = BrokerUnavailable(reason)
            error.__cause__ = cause
            waiting.done.set_exception(error)


class Lanes:
    """A set of lanes that closes together (a publisher's, or the broker's)."""

    def __init__(self) -> None:
        self.lanes: dict[object, Lane] = {}
        self.closed = False

    def open(self) -> None:
        """Take items again (the broker connected again after a close)."""
        self.closed = False

    async def close(self, timeout: float) -> None:
        """Take no more items; publish those waiting for up to ``timeout`` seconds, then fail
        the rest. Publishes still in flight end when the connection closes (see ``stop``)."""
        self.closed = True
        for lane in self.lanes.values():
            lane.send_now()
        deadline = time.monotonic() + timeout
        while (in_flight := self._in_flight()) and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(in_flight, timeout=left)
        for lane in self.lanes.values():
            if lane.waiting:
                logger.warning(
                    "%s: %d items not published before closing",
                    lane.routing_key,
                    len(lane.waiting),
                )
            lane.fail_waiting("the broker connection closed before the item was published")

    async def stop(self) -> None:
        """End the publishes still in flight: their waiters get ``BrokerUnavailable``."""
        in_flight = self._in_flight()
        for task in in_flight:
            task.cancel()
        if in_flight:
            await asyncio.wait(in_flight)

    def _in_flight(self) -> set[asyncio.Task[None]]:
        return {task for lane in self.lanes.values() for task in lane.in_flight}


class GroupPublisher(Lanes):
    """Group commit of ``BATCHES`` items, one lane per routing key (``Broker.publish_grouped``)."""

    def __init__(self, publish: Publish, *, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        super().__init__()
        self._publish = publish
        self.max_in_flight = max_in_flight

    async def publish(self, routing_key: str, item: ProtoMessage) -> None:
        """Publish ``item`` to ``routing_key``; return once the broker confirmed the message
        carrying it."""
        if self.closed:
            raise BrokerUnavailable("the broker connection is closing")
        if type(item) not in BATCHES:
            raise TypeError(f"{type(item).__name__} does not travel in batches")
        lane = self.lanes.get(routing_key)
        if lane is None:
            lane = self.lanes[routing_key] = Lane(
                routing_key, batch_items, self._publish, max_in_flight=self.max_in_flight
            )
        await lane.put(item)


# --- consuming ------------------------------------------------------------------------------


def unbatch(message: ProtoMessage) -> list[tuple[ProtoMessage, str]] | None:
    """A batch's items with their trace contexts; None for a message that is no batch."""
    field = _ITEMS_OF.get(type(message))
    if field is None:
        return None
    items = list(getattr(message, field))
    traces = list(message.traceparents)  # type: ignore[attr-defined]
    traces += [""] * (len(items) - len(traces))
    return list(zip(items, traces, strict=True))


async def handle_items(
    items: list[tuple[ProtoMessage, str]],
    handle: Callable[[ProtoMessage], Awaitable[None]],
) -> None:
    """Handle a batch's items at once, each in its own trace; return when all are done.

    If any failed, the first failure is raised once every item has finished (the consumer
    then requeues the whole message: items already handled are handled again, the
    at-least-once norm; the scheduler drops a second copy of an attempt it sent)."""
    # Each item's handler is called here, in the task that acks the broker message, with the
    # item's trace current, and what it returns is awaited in a task of the item's own, made
    # in that trace (a task runs in a copy of the context it was made in): a handler may
    # note the acking task (the sender waits for its acks when it stops). No wrapper
    # coroutine of our own per item: a task and its context are all it needs.
    loop = asyncio.get_running_loop()
    running: list[asyncio.Future[None]] = []
    for item, traceparent in items:
        token = extract_traceparent(traceparent)
        try:
            handling = handle(item)
            if asyncio.iscoroutine(handling):
                running.append(loop.create_task(handling))
            else:
                running.append(asyncio.ensure_future(handling))
        except Exception as exc:  # a handler that failed before it returned an awaitable
            failed = loop.create_future()
            failed.set_exception(exc)
            running.append(failed)
        finally:
            token.detach()
    outcomes = await asyncio.gather(*running, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
