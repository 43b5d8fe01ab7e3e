"""Backlog queues: where a speed key's deliveries wait for a slot, off the shard's inbound queue.

A delivery that cannot be granted at once goes to its key's own queue
(``scheduler.backlog.<shard>.<server>/<key>``, a priority queue, made when needed and deleted
once empty and idle), so the inbound queue never waits for a slow or throttled destination.
The queue's consumer keeps a few deliveries in memory (its prefetch: what the key can grant
soon, at most its connections), highest priority first, each waiting in its gate for a grant.

Deliveries travel to a backlog queue by group commit (``broker/groups.py``), one lane per
queue and priority: those of one priority that arrive while the lane's publish is in flight
go together, as one ``DeliveryTasks`` of at most half the key's prefetch, and the consumer
takes as many messages as keep at most its prefetch of deliveries in memory. Under load,
when every delivery of a key goes through its backlog, this is one broker message for
several instead of one each; a batch is acked once each of its deliveries was sent (one let
go sends the whole message back, and the copies of those sent meanwhile are dropped as
duplicates, ``sent.py``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection
from opentelemetry import propagate

from postline.common.broker import Broker
from postline.common.broker.consumer import MessageMeta, Requeue
from postline.common.broker.groups import Lane, batch_items
from postline.common.semconv import DELIVERY_ID, SPAN_GRANT, SPEED_KEY
from postline.common.telemetry import WAIT_HEADER, may_record, tracer, wait_links
from postline.scheduler import metrics, queues
from postline.scheduler.busy import Busy
from postline.scheduler.consuming import Consumers
from postline.scheduler.gates import Backlog, Gate, spacing
from postline.scheduler.leases import StateBook
from postline.scheduler.pauses import PausedDomains
from postline.scheduler.settings import RuntimeSettings
from postline.v1 import delivery_pb2, scheduler_pb2

_tracer = tracer(__name__)
# A backlogged delivery waits for its key's speed: the span of its turn links to the one that
# queued it (no span covers the wait).
BACKLOG_WAIT = {WAIT_HEADER: "backlog"}

logger = logging.getLogger(__name__)

# A backlogged delivery's turn: wait for a grant and send it (the runtime's).
WaitAndSend = Callable[[Gate, delivery_pb2.DeliveryTask], Awaitable[None]]


class Backlogs:
    def __init__(
        self,
        number: int,
        connection: AbstractConnection,
        consumers: Consumers,
        *,
        broker: Broker,
        book: StateBook,
        pauses: PausedDomains,
        settings: RuntimeSettings,
        clock: Callable[[], float],
        active: Busy,
        spawn: Callable[[Awaitable[Any]], None],
        wait_and_send: WaitAndSend,
    ) -> None:
        self.number = number
        self.connection = connection
        self.consumers = consumers
        self.broker = broker
        self.book = book
        self.pauses = pauses
        self.settings = settings
        self.clock = clock
        self.active = active
        self.spawn = spawn
        self.wait_and_send = wait_and_send
        self.stopping = False
        self._lanes: dict[tuple[str, int], Lane] = {}

    async def put(self, gate: Gate, task: delivery_pb2.DeliveryTask) -> None:
        """Queue a delivery in its key's backlog (made first if there is none)."""
        while True:
            backlog = gate.backlog
            if backlog is None or backlog.closing:
                async with gate.lock:  # a deletion in progress finishes first
                    if gate.backlog is None:
                        await self._open(gate)
                continue
            # Counted before the publish: the consumer may get it before the confirm.
            backlog.ready += 1
            try:
                with backlog.publishing:
                    # Returns once the message carrying it was confirmed.
                    await self._lane(gate, backlog, task.priority).put(task)
            except BaseException:
                backlog.ready -= 1
                raise
            backlog.last_used = self.clock()
            metrics.decided("backlogged").inc()
            return

    def _lane(self, gate: Gate, backlog: Backlog, priority: int) -> Lane:
        """The group commit lane of a backlog queue for one priority (a broker message has one)."""
        lane = self._lanes.get((backlog.name, priority))
        if lane is None:
            publish = functools.partial(
                self.broker.publish, priority=priority, headers=BACKLOG_WAIT
            )
            lane = self._lanes[backlog.name, priority] = Lane(backlog.name, batch_items, publish)
        lane.max_items = self.batch_size(gate)
        return lane

    async def _open(self, gate: Gate) -> None:
        """Make the key's backlog queue; its record goes first, so a new owner finds every
        queue that may hold deliveries."""
        name = queues.backlog_queue(self.number, gate.name)
        await self.book.publish_index(gate, name)
        queue = await queues.declare_backlog(self.consumers.channel, name)
        gate.backlog = Backlog(name, queue, 0, self.clock())
        metrics.BACKLOG_QUEUES.inc()
        await self.start_consumer(gate)
        logger.debug("shard %d: backlog queue %s opened", self.number, name)

    async def reopen(self, gate: Gate, index: scheduler_pb2.BacklogQueue) -> None:
        """A backlog queue a previous owner left (from its record in the state queue)."""
        queue = await queues.declare_backlog(self.consumers.channel, index.queue)
        declared = queue.declaration_result.message_count or 0
        gate.backlog = Backlog(index.queue, queue, declared, self.clock())
        metrics.BACKLOG_QUEUES.inc()
        await self.start_consumer(gate)

    def prefetch(self, gate: Gate) -> int:
        """How many of the key's deliveries wait in memory: what it can grant within
        ``max_wait``, at most its connections (few, so a high-priority arrival is next)."""
        limit = gate.limit
        if limit is None:
            return 1
        gap = spacing(limit)
        soon = int(self.settings.max_wait / gap) if gap > 0 else limit.connections
        return max(1, min(limit.connections, soon, self.settings.backlog_prefetch_max))

    def batch_size(self, gate: Gate) -> int:
        """Deliveries per backlog message at most: half the prefetch, so that two messages
        are in memory at once and the next one comes while the other is granted."""
        return max(1, self.prefetch(gate) // 2)

    def prefetch_messages(self, gate: Gate) -> int:
        """The consumer's prefetch in broker messages: at most ``prefetch`` deliveries."""
        return max(1, self.prefetch(gate) // self.batch_size(gate))

    async def start_consumer(self, gate: Gate) -> None:
        backlog = gate.backlog
        if backlog is None or backlog.consumer_tag is not None or self.stopping:
            return
        if gate.domain is not None and self.pauses.is_paused(gate.domain):
            return  # resumed: started again then

        async def handle(task: delivery_pb2.DeliveryTask, meta: MessageMeta) -> None:
            # Its turn is a decision of its own, linked to the one that queued it here.
            links = _turn_links(meta) if may_record() else []
            with _tracer.start_as_current_span(SPAN_GRANT, links=links) as span:
                span.set_attribute(DELIVERY_ID, task.delivery.delivery_id)
                span.set_attribute(SPEED_KEY, gate.key)
                await self._on_task(gate, task)

        backlog.prefetch = self.prefetch_messages(gate)
        backlog.consumer_tag = await self.consumers.start(
            backlog.queue, backlog.prefetch, handle, delivery_pb2.DeliveryTask
        )

    def follow_limit(self, gate: Gate) -> None:
        """A recovered backlog learns its key's limit from its first delivery: consume again
        with the prefetch that limit calls for."""
        backlog = gate.backlog
        if backlog is not None and backlog.prefetch != self.prefetch_messages(gate):
            self.spawn(self._restart_consumer(gate))

    async def _restart_consumer(self, gate: Gate) -> None:
        async with gate.lock:
            backlog = gate.backlog
            if backlog is None or backlog.closing:
                return
            if backlog.consumer_tag is None or backlog.prefetch == self.prefetch_messages(gate):
                return
            await self.stop_consumer(gate)
            await self.start_consumer(gate)

    async def stop_consumer(self, gate: Gate) -> None:
        backlog = gate.backlog
        if backlog is None or backlog.consumer_tag is None:
            return
        tag, backlog.consumer_tag = backlog.consumer_tag, None
        await self.consumers.stop(backlog.queue, tag)

    async def _on_task(self, gate: Gate, task: delivery_pb2.DeliveryTask) -> None:
        backlog = gate.backlog
        if backlog is not None:
            backlog.ready -= 1
            backlog.last_used = self.clock()
        if self.stopping:
            raise Requeue
        try:
            with self.active:
                await self.wait_and_send(gate, task)
        except Requeue:
            if gate.backlog is not None:
                gate.backlog.ready += 1
            raise

    def idle(self, gate: Gate, now: float) -> bool:
        """Whether the key's backlog queue looks empty and unused for ``backlog_idle``."""
        backlog = gate.backlog
        return (
            backlog is not None
            and not gate.waiters
            and backlog.ready <= 0
            and now - backlog.last_used > self.settings.backlog_idle
        )

    async def close_idle(self, gate: Gate) -> None:
        """Delete an empty, idle backlog queue (only if empty: the broker checks)."""
        async with gate.lock:
            backlog = gate.backlog
            if backlog is None or gate.waiters:
                return
            backlog.closing = True
            await backlog.publishing.idle()
            await self.stop_consumer(gate)
            deleted = False
            probe = await self.connection.channel()  # if_empty failing closes it
            try:
                await probe.queue_delete(backlog.name, if_unused=False, if_empty=True)
                deleted = True
            except aio_pika.exceptions.ChannelPreconditionFailed:
                pass
            finally:
                with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
                    await probe.close()
            if not deleted:
                backlog.closing = False
                backlog.ready = max(backlog.ready, 1)
                await self.start_consumer(gate)
                return
            gate.backlog = None
            for lane in [k for k in self._lanes if k[0] == backlog.name]:
                del self._lanes[lane]
            metrics.BACKLOG_QUEUES.dec()
            await self.book.backlog_deleted(gate)
            logger.debug("shard %d: idle backlog queue %s deleted", self.number, backlog.name)


def _turn_links(meta: MessageMeta) -> list[Any]:
    """The link of a backlogged delivery's turn to the span that queued it: a lone message
    carries that span's context in its headers; an item of a batch has it current (each
    item's, ``handle_items``)."""
    if WAIT_HEADER not in meta.headers or "traceparent" in meta.headers:
        return wait_links(meta.headers)
    carrier = dict(meta.headers)
    propagate.inject(carrier)
    return wait_links(carrier)
