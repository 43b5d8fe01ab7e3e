"""One scheduler shard this replica owns: its speed keys, the grants in flight, the backlogs.

How a delivery gets a speed slot (see the README's scheduler section for the whole story):

* A delivery that is ready (not held, not paused) asks its speed key's *gate*. If the key has no
  backlog and a slot is free now, it is granted at once: a ``SpeedLease`` goes to the shard's
  state queue, then the task to the senders.
* Otherwise it goes to the key's own backlog queue (a priority queue), and the inbound queue
  moves on: a throttled or slow destination never holds the shared queue's prefetch window.
* The backlog's consumer holds a few deliveries in memory (its prefetch, sized to what the key
  can grant soon), highest priority first, and grants them as slots free up: a result frees a
  connection, a timer the interval or the rate.
* Leases stay unacked in the state queue while their attempt is in flight. If this replica
  dies, the broker gives them back to the queue, and the next owner counts them before it
  grants anything: limits hold across a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from postline.common.broker import Broker
from postline.common.broker.consumer import Delivery, PoisonMessage, decode
from postline.common.broker.topology import TASK_KEY, inbound_queue, results_queue
from postline.common.ids import new_id
from postline.common.policy import SpeedLimit
from postline.common.policy.units import format_duration
from postline.common.timeutil import from_timestamp, to_timestamp
from postline.scheduler import metrics, queues
from postline.scheduler.consuming import Requeue, subscribe
from postline.scheduler.pauses import PausedDomains
from postline.scheduler.speed import SpeedState
from postline.v1 import delivery_pb2, scheduler_pb2

if TYPE_CHECKING:
    from postline.scheduler.handlers import Scheduler

logger = logging.getLogger(__name__)

INBOUND_TYPES = {
    m.DESCRIPTOR.full_name: m for m in (delivery_pb2.AcceptedDelivery, delivery_pb2.DeliveryTask)
}
STATE_TYPES = {
    m.DESCRIPTOR.full_name: m for m in (scheduler_pb2.SpeedLease, scheduler_pb2.BacklogQueue)
}
# How often the owner looks after its shard (stats, idle backlogs, lost leases).
SWEEP_SECONDS = 1.0
# Attempts this owner sent, remembered to drop a second copy of one (see ShardRuntime.sent).
SENT_MEMORY = 200_000


class Outcome(StrEnum):
    GRANTED = "granted"
    BACKLOGGED = "backlogged"
    DUPLICATE = "duplicate"  # this owner already sent that attempt
    PAUSED = "paused"  # a paused member of a group: the caller parks it


@dataclass(frozen=True)
class RuntimeSettings:
    inbound_prefetch: int = 200
    results_prefetch: int = 100
    backlog_prefetch_max: int = 20
    max_wait: float = 300.0  # a delivery held in memory longer goes back to its backlog
    lease_timeout: float = 3600.0
    renew_after: float = 600.0  # below RabbitMQ's consumer_timeout (30 min by default)
    backlog_idle: float = 60.0


class Busy:
    """Work in progress that can be waited on to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()


@dataclass(order=True)
class Waiter:
    rank: tuple[int, int]  # (-priority, arrival): highest priority first, then first come
    future: asyncio.Future[str | None] = field(compare=False)


@dataclass
class Backlog:
    name: str
    queue: AbstractQueue
    ready: int  # an estimate of what waits in the queue (for stats and idle deletion)
    last_used: float
    consumer_tag: str | None = None
    prefetch: int = 0
    publishing: Busy = field(default_factory=Busy)
    closing: bool = False


@dataclass
class Gate:
    """One speed key of one server (speed rules are per server)."""

    server: str
    key: str
    limit: SpeedLimit | None
    last_active: float
    state: SpeedState = field(default_factory=SpeedState)
    waiters: list[Waiter] = field(default_factory=list)
    backlog: Backlog | None = None
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    domains: dict[str, float] = field(default_factory=dict)  # domain -> last seen

    @property
    def name(self) -> str:
        return gate_name(self.server, self.key)

    @property
    def domain(self) -> str | None:
        """The domain of a per-domain key (None for a group)."""
        return self.key.removeprefix("domain:") if self.key.startswith("domain:") else None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def set_limit(self, limit: SpeedLimit, claimed_at: float) -> None:
        if self.limit is None:
            # The previous owner may have granted just before it died.
            self.state.take_over(limit, claimed_at)
        self.limit = limit


def gate_name(server: str, speed_key: str) -> str:
    return f"{server}/{speed_key}"


@dataclass
class Held:
    """A state message this owner keeps unacked (a lease, a backlog index, the token)."""

    message: ProtoMessage
    incoming: AbstractIncomingMessage
    since: float


class ShardRuntime:
    def __init__(
        self,
        number: int,
        connection: AbstractConnection,
        channel: AbstractChannel,
        token: AbstractIncomingMessage,
        *,
        broker: Broker,
        scheduler: Scheduler,
        pauses: PausedDomains,
        settings: RuntimeSettings,
        clock: Callable[[], float],
        replica: str,
    ) -> None:
        self.number = number
        self.connection = connection
        self.channel = channel
        self.broker = broker
        self.scheduler = scheduler
        self.pauses = pauses
        self.settings = settings
        self.clock = clock
        self.replica = replica
        self.claimed_at = clock()
        self.gates: dict[str, Gate] = {}
        self.leases: dict[str, Held] = {}
        self.indexes: dict[str, Held] = {}  # gate name -> its BacklogQueue message
        self.token = Held(scheduler_pb2.ShardToken(shard=number), token, clock())
        self.released: dict[str, float] = {}  # grants freed before their lease came back
        self.renewing: set[str] = set()  # leases re-published, the copy not back yet
        self.opening: set[str] = set()  # backlog records published, not back yet
        # (delivery id, attempt) this owner sent. At-least-once delivery can bring a second
        # copy of a delivery (a crash after it was queued, before its input was acked): a copy
        # of an attempt this owner itself sent is dropped. Attempts a previous owner leased
        # are sent again (its lease cannot tell whether the task went out): duplicates there
        # are the price of losing nothing.
        self.sent: OrderedDict[tuple[str, int], float] = OrderedDict()
        self.held: dict[str, dict[str, float]] = {}  # domain -> delivery id -> hold end
        self.stopping = False
        self._seq = itertools.count()
        self._qos_lock = asyncio.Lock()
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._active = Busy()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Take over: read the previous owner's leases and backlogs, then consume."""
        state = await queues.declare_state(self.channel, self.number)
        recovered = await self._recover(state)
        await self._consume(state, 0, self._on_state_message, raw=True)
        for index in recovered:
            await self._reopen_backlog(index)
        results = await self.channel.get_queue(results_queue(self.number), ensure=False)
        await self._consume(
            results,
            self.settings.results_prefetch,
            self._tracked(self.scheduler.on_result),
            types=delivery_pb2.DeliveryResult,
        )
        inbound = await self.channel.get_queue(inbound_queue(self.number), ensure=False)
        await self._consume(
            inbound, self.settings.inbound_prefetch, self._tracked(self._on_inbound), INBOUND_TYPES
        )
        self._sweeper = asyncio.create_task(self._sweep_forever())
        logger.info(
            "shard %d owned by %s: %d leases and %d backlogs taken over",
            self.number,
            self.replica,
            len(self.leases),
            len(recovered),
        )

    async def stop(self, grace: float = 10.0) -> None:
        """Hand the shard back cleanly: stop taking work, let running handlers finish, give
        waiting deliveries back to their backlogs, then close (leases go back unacked)."""
        self.stopping = True
        for queue, tag in self._consumers:
            with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
                await queue.cancel(tag)
        for gate in self.gates.values():
            self._let_go(gate)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._active.idle(), grace)
        self.lost()
        with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
            await self.channel.close()

    def lost(self) -> None:
        """The channel is gone (or going): forget everything; the broker requeues it all."""
        self.stopping = True
        self.pauses.unlisten(self.on_pause_change)
        if self._sweeper is not None:
            self._sweeper.cancel()
        for gate in self.gates.values():
            gate.cancel_timer()
            for waiter in gate.waiters:
                if not waiter.future.done():
                    waiter.future.cancel()
        for task in self._tasks:
            task.cancel()
        in_flight = sum(len(g.state.in_flight) for g in self.gates.values())
        metrics.IN_FLIGHT.dec(in_flight)
        metrics.BACKLOG_QUEUES.dec(sum(1 for g in self.gates.values() if g.backlog))
        self.gates.clear()

    def _tracked(self, handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def run(message: Any, meta: Delivery) -> None:
            if self.stopping:
                raise Requeue
            with self._active:
                await handler(message, meta, self)

        return run

    async def _on_inbound(self, message: Any, meta: Delivery, shard: ShardRuntime) -> None:
        if isinstance(message, delivery_pb2.AcceptedDelivery):
            await self.scheduler.on_accepted(message, meta, shard)
        else:
            await self.scheduler.on_parked(message, meta, shard)

    async def _consume(
        self,
        queue: AbstractQueue,
        prefetch: int,
        handler: Callable[..., Awaitable[None]],
        types: Any = None,
        *,
        raw: bool = False,
    ) -> str:
        # basic.qos without "global" limits each consumer created after it on the channel, so
        # every consumer gets its own prefetch.
        async with self._qos_lock:
            await self.channel.set_qos(prefetch_count=prefetch)
            if raw:
                tag = await queue.consume(handler)
            else:
                tag = await subscribe(queue, types, handler)
        self._consumers.append((queue, tag))
        return tag

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- granting --------------------------------------------------------------------------

    def gate(self, server: str, limit: SpeedLimit) -> Gate:
        name = gate_name(server, limit.key)
        gate = self.gates.get(name)
        now = self.clock()
        if gate is None:
            gate = self.gates[name] = Gate(server, limit.key, None, now)
        gate.set_limit(limit, self.claimed_at)
        gate.last_active = now
        return gate

    async def submit(
        self, task: delivery_pb2.DeliveryTask, server: str, limit: SpeedLimit
    ) -> Outcome:
        """Grant at once if the key allows it, else queue in the key's backlog."""
        gate = self.gate(server, limit)
        domain = task.delivery.recipient_domain
        gate.domains[domain] = self.clock()
        paused = self.pauses.is_paused(domain)
        if paused and gate.domain is None:
            return Outcome.PAUSED
        if self.already_sent(task):
            return Outcome.DUPLICATE
        if (
            not paused
            and gate.backlog is None
            and not gate.waiters
            and gate.state.wait(limit, self.clock()) == 0
        ):
            grant_id = self._grant(gate)
            await self._send(gate, task, grant_id)
            return Outcome.GRANTED
        await self._to_backlog(gate, task)
        return Outcome.BACKLOGGED

    def _grant(self, gate: Gate) -> str:
        assert gate.limit is not None
        grant_id = new_id()
        gate.state.grant(grant_id, gate.limit, self.clock())
        metrics.IN_FLIGHT.inc()
        return grant_id

    async def _send(self, gate: Gate, task: delivery_pb2.DeliveryTask, grant_id: str) -> None:
        """Publish the lease, then the task: a crash in between leaves a lease without a task
        (a slot counted too many until the delivery is granted again), never the reverse."""
        now = self.clock()
        task.grant_id = grant_id
        task.speed_key = gate.key
        task.shard = self.number
        task.granted_at.CopyFrom(to_timestamp(now))
        lease = scheduler_pb2.SpeedLease(
            grant_id=grant_id,
            speed_key=gate.key,
            delivery_id=task.delivery.delivery_id,
            attempt=task.attempt,
            granted_at=to_timestamp(now),
            shard=self.number,
            domain=task.delivery.recipient_domain,
            server=gate.server,
        )
        try:
            await self.broker.publish(queues.state_key(self.number), lease)
            await self.broker.publish(TASK_KEY, task, priority=task.priority)
        except BaseException:
            self._free(gate, grant_id)
            self.released[grant_id] = now  # its lease, if it went out, is acked on arrival
            raise
        logger.debug(
            "%s granted %s (%s) by %s on shard %d",
            task.delivery.delivery_id,
            grant_id,
            gate.name,
            self.replica,
            self.number,
        )
        self.sent[(task.delivery.delivery_id, task.attempt)] = now
        if len(self.sent) > SENT_MEMORY:
            self.sent.popitem(last=False)
        metrics.TASKS.labels(attempt="first" if task.attempt == 1 else "retry").inc()
        metrics.DECISIONS.labels(decision="granted").inc()

    def already_sent(self, task: delivery_pb2.DeliveryTask) -> bool:
        if (task.delivery.delivery_id, task.attempt) not in self.sent:
            return False
        logger.info(
            "%s attempt %d: a second copy, already sent by this owner; dropped",
            task.delivery.delivery_id,
            task.attempt,
        )
        metrics.DECISIONS.labels(decision="duplicate").inc()
        return True

    def release(self, task: delivery_pb2.DeliveryTask) -> None:
        """A result came back: free its slot and let the next delivery of the key go."""
        if not task.grant_id:
            return
        gate = self.gates.get(gate_name(task.delivery.server, task.speed_key))
        if gate is not None:
            self._free(gate, task.grant_id)
        held = self.leases.pop(task.grant_id, None)
        if held is not None:
            self._spawn(_settle(held.incoming.ack()))
        if held is None or task.grant_id in self.renewing:
            # Its lease (or a renewed copy) is still on its way: ack it when it arrives.
            self.renewing.discard(task.grant_id)
            self.released[task.grant_id] = self.clock()

    def _free(self, gate: Gate, grant_id: str) -> None:
        if gate.state.release(grant_id):
            metrics.IN_FLIGHT.dec()
        self._pump(gate)

    def _pump(self, gate: Gate) -> None:
        """Grant waiting deliveries while the key allows; else wake up when it will."""
        gate.cancel_timer()
        if self.stopping or gate.limit is None:
            return
        while gate.waiters:
            if gate.waiters[0].future.done():  # timed out or let go
                heapq.heappop(gate.waiters)
                continue
            if gate.domain is not None and self.pauses.is_paused(gate.domain):
                return
            wait = gate.state.wait(gate.limit, self.clock())
            if wait is None:
                return  # every connection in use: a result pumps again
            if wait > 0:
                gate.timer = asyncio.get_running_loop().call_later(wait, self._pump, gate)
                return
            waiter = heapq.heappop(gate.waiters)
            waiter.future.set_result(self._grant(gate))

    def _let_go(self, gate: Gate) -> None:
        """Give the key's waiting deliveries back to its backlog queue."""
        gate.cancel_timer()
        for waiter in gate.waiters:
            if not waiter.future.done():
                waiter.future.set_result(None)
        gate.waiters.clear()

    # --- backlogs --------------------------------------------------------------------------

    async def _to_backlog(self, gate: Gate, task: delivery_pb2.DeliveryTask) -> None:
        while True:
            backlog = gate.backlog
            if backlog is None or backlog.closing:
                async with gate.lock:  # a deletion in progress finishes first
                    if gate.backlog is None:
                        await self._open_backlog(gate)
                continue
            # Counted before the publish: the consumer may get it before the confirm.
            backlog.ready += 1
            try:
                with backlog.publishing:
                    await self.broker.publish(backlog.name, task, priority=task.priority)
            except BaseException:
                backlog.ready -= 1
                raise
            backlog.last_used = self.clock()
            metrics.DECISIONS.labels(decision="backlogged").inc()
            return

    async def _open_backlog(self, gate: Gate, ready: int = 0) -> None:
        """Create the key's backlog queue; its index message goes first, so a new owner
        finds every queue that may hold deliveries."""
        name = queues.backlog_queue(self.number, gate.name)
        if gate.name not in self.indexes:
            self.opening.add(gate.name)  # its record is on its way back to us
            index = scheduler_pb2.BacklogQueue(
                speed_key=gate.key, queue=name, shard=self.number, server=gate.server
            )
            await self.broker.publish(queues.state_key(self.number), index)
        queue = await queues.declare_backlog(self.channel, name)
        gate.backlog = Backlog(name, queue, ready, self.clock())
        metrics.BACKLOG_QUEUES.inc()
        await self._start_backlog_consumer(gate)
        logger.debug("shard %d: backlog queue %s opened", self.number, name)

    async def _reopen_backlog(self, index: scheduler_pb2.BacklogQueue) -> None:
        gate = self.gates.get(gate_name(index.server, index.speed_key))
        if gate is None:
            gate = Gate(index.server, index.speed_key, None, self.clock())
            self.gates[gate.name] = gate
        queue = await queues.declare_backlog(self.channel, index.queue)
        declared = queue.declaration_result.message_count or 0
        gate.backlog = Backlog(index.queue, queue, declared, self.clock())
        metrics.BACKLOG_QUEUES.inc()
        await self._start_backlog_consumer(gate)

    def _backlog_prefetch(self, gate: Gate) -> int:
        """How many of the key's deliveries wait in memory: what it can grant within
        ``max_wait``, at most its connections (few, so a high-priority arrival is next)."""
        limit = gate.limit
        if limit is None:
            return 1
        spacing = limit.interval.total_seconds()
        if limit.rate is not None:
            spacing = max(spacing, limit.rate.per / limit.rate.count)
        soon = int(self.settings.max_wait / spacing) if spacing > 0 else limit.connections
        return max(1, min(limit.connections, soon, self.settings.backlog_prefetch_max))

    async def _start_backlog_consumer(self, gate: Gate) -> None:
        backlog = gate.backlog
        if backlog is None or backlog.consumer_tag is not None or self.stopping:
            return
        if gate.domain is not None and self.pauses.is_paused(gate.domain):
            return  # resumed: started again then

        async def handle(task: delivery_pb2.DeliveryTask, meta: Delivery) -> None:
            await self._on_backlog_task(gate, task)

        backlog.prefetch = self._backlog_prefetch(gate)
        backlog.consumer_tag = await self._consume(
            backlog.queue, backlog.prefetch, handle, delivery_pb2.DeliveryTask
        )

    async def _restart_backlog_consumer(self, gate: Gate) -> None:
        """A recovered backlog learns its key's limit from its first delivery: consume again
        with the prefetch that limit calls for (deliveries held in memory stay)."""
        async with gate.lock:
            backlog = gate.backlog
            if backlog is None or backlog.closing:
                return
            if backlog.consumer_tag is None or backlog.prefetch == self._backlog_prefetch(gate):
                return
            await self._stop_backlog_consumer(gate)
            await self._start_backlog_consumer(gate)

    async def _stop_backlog_consumer(self, gate: Gate) -> None:
        backlog = gate.backlog
        if backlog is None or backlog.consumer_tag is None:
            return
        tag, backlog.consumer_tag = backlog.consumer_tag, None
        self._consumers = [(q, t) for q, t in self._consumers if t != tag]
        with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
            await backlog.queue.cancel(tag)

    async def _on_backlog_task(self, gate: Gate, task: delivery_pb2.DeliveryTask) -> None:
        backlog = gate.backlog
        if backlog is not None:
            backlog.ready -= 1
            backlog.last_used = self.clock()
        if self.stopping:
            raise Requeue
        try:
            with self._active:
                await self._wait_and_send(gate, task)
        except Requeue:
            if gate.backlog is not None:
                gate.backlog.ready += 1
            raise

    async def _wait_and_send(self, gate: Gate, task: delivery_pb2.DeliveryTask) -> None:
        ready = await self.scheduler.ready_for_backlog(task, gate, self)
        if ready is None:
            return  # the scheduler dealt with it (failed, parked)
        if self.already_sent(task):
            return
        gate.set_limit(ready, self.claimed_at)
        gate.last_active = self.clock()
        backlog = gate.backlog
        if backlog is not None and backlog.prefetch != self._backlog_prefetch(gate):
            self._spawn(self._restart_backlog_consumer(gate))
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        heapq.heappush(gate.waiters, Waiter((-task.priority, next(self._seq)), future))
        self._pump(gate)
        done, _ = await asyncio.wait({future}, timeout=self.settings.max_wait)
        if not done and future.cancel():
            raise Requeue  # back to the queue before RabbitMQ's consumer timeout
        grant_id = future.result()
        if grant_id is None:
            raise Requeue
        if self.already_sent(task):
            self._free(gate, grant_id)
            return
        await self._send(gate, task, grant_id)

    async def _close_idle_backlog(self, gate: Gate) -> None:
        """Delete an empty, idle backlog queue (only if empty: the broker checks)."""
        async with gate.lock:
            backlog = gate.backlog
            if backlog is None or gate.waiters:
                return
            backlog.closing = True
            await backlog.publishing.idle()
            await self._stop_backlog_consumer(gate)
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
                await self._start_backlog_consumer(gate)
                return
            gate.backlog = None
            metrics.BACKLOG_QUEUES.dec()
            index = self.indexes.pop(gate.name, None)
            if index is not None:
                await _settle(index.incoming.ack())
            logger.debug("shard %d: idle backlog queue %s deleted", self.number, backlog.name)

    # --- pauses ----------------------------------------------------------------------------

    def on_pause_change(self, domain: str, paused: bool) -> None:
        """Paused: the domain's own key stops granting and its consumer lets go (deliveries
        stay in its backlog queue); members of a group are parked by the scheduler instead."""
        for gate in list(self.gates.values()):
            if gate.domain != domain:
                continue
            if paused:
                self._let_go(gate)
                self._spawn(self._stop_backlog_consumer(gate))
            else:
                self._spawn(self._start_backlog_consumer(gate))
                self._pump(gate)

    # --- state messages (leases, backlog indexes) ------------------------------------------

    async def _recover(self, state: AbstractQueue) -> list[scheduler_pb2.BacklogQueue]:
        """Read every state message left by previous owners (they stay unacked with us)."""
        indexes: list[scheduler_pb2.BacklogQueue] = []
        while True:
            incoming = await state.get(no_ack=False, fail=False)
            if incoming is None:
                return indexes
            message = self._decode_state(incoming)
            if isinstance(message, scheduler_pb2.SpeedLease):
                gate = self.gates.get(gate_name(message.server, message.speed_key))
                if gate is None:
                    gate = Gate(message.server, message.speed_key, None, self.clock())
                    self.gates[gate.name] = gate
                gate.state.recover(message.grant_id, from_timestamp(message.granted_at))
                metrics.IN_FLIGHT.inc()
                self._hold(self.leases, message.grant_id, message, incoming)
            elif isinstance(message, scheduler_pb2.BacklogQueue):
                name = gate_name(message.server, message.speed_key)
                if name not in self.indexes:
                    indexes.append(message)
                self._hold(self.indexes, name, message, incoming)

    async def _on_state_message(self, incoming: AbstractIncomingMessage) -> None:
        message = self._decode_state(incoming)
        if isinstance(message, scheduler_pb2.SpeedLease):
            if self.released.pop(message.grant_id, None) is not None:
                await _settle(incoming.ack())  # its result came first
                return
            self.renewing.discard(message.grant_id)
            self._hold(self.leases, message.grant_id, message, incoming)
        elif isinstance(message, scheduler_pb2.BacklogQueue):
            name = gate_name(message.server, message.speed_key)
            gate = self.gates.get(name)
            if name not in self.opening and (gate is None or gate.backlog is None):
                await _settle(incoming.ack())  # a renewed copy of a queue deleted since
                return
            self.opening.discard(name)
            self._hold(self.indexes, name, message, incoming)

    def _decode_state(self, incoming: AbstractIncomingMessage) -> ProtoMessage | None:
        try:
            return decode(incoming.body, dict(incoming.headers or {}), STATE_TYPES)
        except (DecodeError, PoisonMessage) as exc:
            logger.error("shard %d: unreadable state message dropped: %s", self.number, exc)
            self._spawn(_settle(incoming.reject(requeue=False)))
            return None

    def _hold(
        self,
        held: dict[str, Held],
        key: str,
        message: ProtoMessage,
        incoming: AbstractIncomingMessage,
    ) -> None:
        """Keep the newest copy unacked; a renewed copy replaces (acks) the older one."""
        older = held.get(key)
        held[key] = Held(message, incoming, self.clock())
        if older is not None:
            self._spawn(_settle(older.incoming.ack()))

    async def _renew(self) -> None:
        """RabbitMQ closes a channel holding a delivery unacked for longer than its consumer
        timeout (30 min by default): re-publish long-held state, the copy replaces it."""
        due = self.clock() - self.settings.renew_after
        for grant_id, held in list(self.leases.items()):
            if held.since < due:
                held.since = self.clock()
                self.renewing.add(grant_id)
                await self.broker.publish(queues.state_key(self.number), held.message)
        for held in list(self.indexes.values()):
            if held.since < due:
                held.since = self.clock()
                await self.broker.publish(queues.state_key(self.number), held.message)
        if self.token.since < due:
            self.token.since = self.clock()
            await self.broker.publish(
                queues.owner_lock(self.number), scheduler_pb2.ShardToken(shard=self.number)
            )
            await _settle(self.token.incoming.ack())  # the broker hands us the new one

    def hold_token(self, incoming: AbstractIncomingMessage) -> None:
        self.token = Held(self.token.message, incoming, self.clock())

    # --- prohibited hours (for stats) ------------------------------------------------------

    def note_held(self, domain: str, delivery_id: str, until: float) -> None:
        self.held.setdefault(domain, {})[delivery_id] = until

    def note_released(self, domain: str, delivery_id: str) -> None:
        held = self.held.get(domain)
        if held is not None:
            held.pop(delivery_id, None)
            if not held:
                del self.held[domain]

    # --- upkeep ----------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        rounds = 0
        # Idle backlogs and renewals are looked at every 10 s (sooner if they are due sooner).
        every = max(1, int(min(10.0, self.settings.backlog_idle, self.settings.renew_after / 2)))
        while not self.stopping:
            await asyncio.sleep(SWEEP_SECONDS)
            rounds += 1
            try:
                await self.broker.publish(queues.stats_key(self.number), self.snapshot())
                self._expire_leases()
                if rounds % every == 0:
                    await self._upkeep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("shard %d: upkeep failed", self.number)

    def _expire_leases(self) -> None:
        now = self.clock()
        before = now - self.settings.lease_timeout
        for gate in self.gates.values():
            for grant_id in gate.state.expired(before):
                logger.warning(
                    "shard %d: grant %s of %s had no result within %s; its slot is freed",
                    self.number,
                    grant_id,
                    gate.name,
                    format_duration_s(self.settings.lease_timeout),
                )
                self._free(gate, grant_id)
                held = self.leases.pop(grant_id, None)
                if held is not None:
                    self._spawn(_settle(held.incoming.ack()))
                if held is None or grant_id in self.renewing:
                    self.renewing.discard(grant_id)
                    self.released[grant_id] = now
        for grant_id, at in list(self.released.items()):
            if at < before:
                del self.released[grant_id]
        while self.sent and next(iter(self.sent.values())) < before:
            self.sent.popitem(last=False)

    async def _upkeep(self) -> None:
        now = self.clock()
        await self._renew()
        for gate in list(self.gates.values()):
            backlog = gate.backlog
            if (
                backlog is not None
                and not gate.waiters
                and backlog.ready <= 0
                and now - backlog.last_used > self.settings.backlog_idle
            ):
                await self._close_idle_backlog(gate)
            idle = now - gate.last_active
            if (
                gate.backlog is None
                and not gate.waiters
                and not gate.state.in_flight
                and idle > max(600.0, _spacing(gate.limit) * 2)
            ):
                del self.gates[gate.name]

    # --- stats -----------------------------------------------------------------------------

    def snapshot(self) -> scheduler_pb2.ShardSnapshot:
        now = self.clock()
        snapshot = scheduler_pb2.ShardSnapshot(
            shard=self.number, owner=self.replica, at=to_timestamp(now)
        )
        seen: set[str] = set()
        for gate in self.gates.values():
            waiting = sum(1 for w in gate.waiters if not w.future.done())
            backlog = max(0, gate.backlog.ready if gate.backlog else 0) + waiting
            if not backlog and not gate.state.in_flight:
                continue
            stats = snapshot.domains.add(
                domain=gate.domain or gate.key.removeprefix("group:"),
                speed_key=gate.key,
                server=gate.server,
                backlog=backlog,
                in_flight=len(gate.state.in_flight),
                shard=self.number,
                paused=bool(gate.domain and self.pauses.is_paused(gate.domain)),
                domains=sorted(gate.domains),
            )
            if gate.limit is not None:
                stats.connections = gate.limit.connections
                stats.rate = str(gate.limit.rate) if gate.limit.rate else ""
                stats.interval = format_duration(gate.limit.interval)
                rule = gate.limit.rule
                stats.speed_rule = f"speed[{rule}]" if rule is not None else "*"
                release = gate.state.next_release(gate.limit, now) if backlog else None
                if release is not None:
                    stats.next_release.CopyFrom(to_timestamp(release))
            if gate.domain is not None:
                seen.add(gate.domain)
                self._add_held(stats, gate.domain)
        for domain in self.held:
            if domain not in seen:
                stats = snapshot.domains.add(domain=domain, shard=self.number)
                stats.paused = self.pauses.is_paused(domain)
                self._add_held(stats, domain)
        return snapshot

    def _add_held(self, stats: scheduler_pb2.DomainStats, domain: str) -> None:
        held = self.held.get(domain)
        if held:
            stats.held = len(held)
            stats.held_until.CopyFrom(to_timestamp(min(held.values())))


def _spacing(limit: SpeedLimit | None) -> float:
    if limit is None:
        return 0.0
    spacing = limit.interval.total_seconds()
    if limit.rate is not None:
        spacing = max(spacing, limit.rate.per / limit.rate.count)
    return spacing


def format_duration_s(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


async def _settle(action: Awaitable[None]) -> None:
    with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
        await action
