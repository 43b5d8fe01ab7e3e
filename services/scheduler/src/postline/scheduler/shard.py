"""One scheduler shard this replica owns: its consumers, granting, and upkeep.

How a delivery gets a speed slot (see the README's scheduler section for the whole story):

* A delivery that is ready (not held, not paused) asks its speed key's *gate* (``gates.py``).
  If the key has no backlog and a slot is free now, it is granted at once: the task goes to
  the senders with a copy to the shard's state queue, its lease (``leases.py``); tasks
  granted together travel together, one priority to a message (``task_lanes.py``).
* Otherwise it goes to the key's own backlog queue (``backlogs.py``), and the inbound queue
  moves on: a throttled or slow destination never holds the shared queue's prefetch window.
* The backlog's consumer keeps a few deliveries in memory, highest priority first, and grants
  them as slots free up: a result frees a connection, a timer the interval or the rate.
* Leases stay unacked in the state queue while their attempt is in flight. If this replica
  dies, the broker gives them back to the queue, and the next owner counts them before it
  grants anything: limits hold across a failover.

The pipeline (what the policy says of each delivery) is behind ``interfaces.Pipeline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from postline.common.broker import Broker
from postline.common.broker.consumer import MessageMeta, Requeue
from postline.common.broker.topology import inbound_queue, results_queue, urgent_queue
from postline.common.policy import SpeedLimit
from postline.common.policy.units import format_duration
from postline.common.runtime import within
from postline.common.timeutil import to_timestamp
from postline.scheduler import metrics, queues
from postline.scheduler.backlogs import Backlogs
from postline.scheduler.busy import Busy
from postline.scheduler.consuming import Consumers
from postline.scheduler.gates import Gate, Gates, granted, spacing
from postline.scheduler.interfaces import GrantOutcome, Pipeline
from postline.scheduler.leases import SHRINK_AFTER, StateBook
from postline.scheduler.pauses import PausedDomains
from postline.scheduler.sent import SentAttempts
from postline.scheduler.settings import RuntimeSettings
from postline.scheduler.snapshot import HeldDeliveries, snapshot
from postline.scheduler.task_lanes import TaskLanes
from postline.v1 import delivery_pb2, scheduler_pb2

logger = logging.getLogger(__name__)

INBOUND_TYPES = {
    m.DESCRIPTOR.full_name: m for m in (delivery_pb2.AcceptedDelivery, delivery_pb2.DeliveryTask)
}
# How often the owner looks after its shard (stats, idle backlogs, lost leases).
SWEEP_SECONDS = 1.0
# A delivery waits for a grant in memory (rather than in the backlog queue) when one is due
# within this long, or on a result.
WAIT_HERE_SECONDS = 1.0


class ShardRuntime:
    def __init__(
        self,
        number: int,
        connection: AbstractConnection,
        channel: AbstractChannel,
        token: AbstractIncomingMessage,
        *,
        broker: Broker,
        pipeline: Pipeline,
        pauses: PausedDomains,
        settings: RuntimeSettings,
        clock: Callable[[], float],
        replica: str,
    ) -> None:
        self._number = number
        self.channel = channel
        self.broker = broker
        self.pipeline = pipeline
        self.pauses = pauses
        self.settings = settings
        self.clock = clock
        self.replica = replica
        self.stopping = False
        self._waiting_here = 0  # inbound deliveries waiting in memory for a grant
        self._active = Busy()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.consumers = Consumers(channel)
        self.gates = Gates(clock, pauses, claimed_at=clock())
        self.book = StateBook(
            number, token, broker=broker, gates=self.gates, clock=clock, spawn=self._spawn
        )
        self.backlogs = Backlogs(
            number,
            connection,
            self.consumers,
            broker=broker,
            book=self.book,
            pauses=pauses,
            settings=settings,
            clock=clock,
            active=self._active,
            spawn=self._spawn,
            wait_and_send=self._wait_and_send,
        )
        self.tasks = TaskLanes(broker, self.book.lease_headers(), settings.task_batch)
        self.sent = SentAttempts()
        self.held = HeldDeliveries()

    @property
    def number(self) -> int:
        return self._number

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Take over: read the previous owner's leases and backlogs, then consume."""
        state = await queues.declare_state(self.channel, self.number)
        recovered = await self.book.recover(state)
        await self.consumers.start(state, 0, self.book.on_state_message)
        for index in recovered:
            await self.backlogs.reopen(self.gates.known(index.server, index.speed_key), index)
        results = await self.channel.get_queue(results_queue(self.number), ensure=False)
        await self.consumers.start(
            results,
            self.settings.results_prefetch,
            self._tracked(
                self.pipeline.on_result, asyncio.Semaphore(self.settings.results_prefetch)
            ),
            delivery_pb2.DeliveryResult,
        )
        # High-priority deliveries have their own door: they never wait behind the inbound
        # queue's backlog (the queue is read as fast as the other, whatever it holds).
        prefetch = self.settings.inbound_prefetch
        for name in (urgent_queue(self.number), inbound_queue(self.number)):
            queue = await self.channel.get_queue(name, ensure=False)
            on_inbound = self._tracked(self._on_inbound, asyncio.Semaphore(prefetch))
            await self.consumers.start(queue, prefetch, on_inbound, INBOUND_TYPES)
        self._sweeper = asyncio.create_task(self._sweep_forever())
        logger.info(
            "shard %d owned by %s: %d leases and %d backlogs taken over",
            self.number,
            self.replica,
            len(self.book.leases),
            len(recovered),
        )

    async def stop(self, grace: float = 10.0) -> None:
        """Hand the shard back cleanly: stop taking work, let running handlers finish, give
        waiting deliveries back to their backlogs, then close (leases go back unacked)."""
        self._stopping()
        await self.consumers.stop_all()
        for gate in self.gates:
            self.gates.let_go(gate)
        with contextlib.suppress(TimeoutError):
            await within(self._active.idle(), grace)
        self.lost()
        with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
            await self.channel.close()

    def _stopping(self) -> None:
        self.stopping = self.backlogs.stopping = self.gates.stopping = True

    def lost(self) -> None:
        """The channel is gone (or going): forget everything; the broker requeues it all."""
        self._stopping()
        self.pauses.unlisten(self.on_pause_change)
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.gates.lost()
        for task in self._tasks:
            task.cancel()

    def keep_token(self, incoming: AbstractIncomingMessage) -> None:
        self.book.keep_token(incoming)

    def _tracked(
        self, handler: Callable[..., Awaitable[None]], slots: asyncio.Semaphore
    ) -> Callable[..., Awaitable[None]]:
        """The handler, counted as active work, at most ``slots`` at once: the prefetch counts
        broker messages, and a batch brings many deliveries in one."""

        async def run(message: Any, meta: MessageMeta) -> None:
            if self.stopping:
                raise Requeue
            async with slots:
                if self.stopping:
                    raise Requeue
                with self._active:
                    await handler(message, meta, self)

        return run

    async def _on_inbound(self, message: Any, meta: MessageMeta, shard: ShardRuntime) -> None:
        if isinstance(message, delivery_pb2.AcceptedDelivery):
            await self.pipeline.on_accepted(message, meta, shard)
        else:
            await self.pipeline.on_parked(message, meta, shard)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- granting --------------------------------------------------------------------------

    async def submit(
        self, task: delivery_pb2.DeliveryTask, server: str, limit: SpeedLimit
    ) -> GrantOutcome:
        """Grant at once if the key allows it, else queue in the key's backlog."""
        gate = self.gates.gate(server, limit)
        domain = task.delivery.recipient_domain
        gate.domains[domain] = self.clock()
        paused = self.pauses.is_paused(domain)
        if paused and gate.domain is None:
            return GrantOutcome.PAUSED
        if self.sent.seen(task):
            return GrantOutcome.DUPLICATE
        if not paused and self.gates.can_grant_now(gate, limit):
            await self._send(gate, task, self.gates.grant(gate))
            return GrantOutcome.GRANTED
        if (
            not paused
            and self._may_wait_here(gate, limit, task)
            and await self._wait_here(gate, task)
        ):
            return GrantOutcome.GRANTED
        await self.backlogs.put(gate, task)
        return GrantOutcome.BACKLOGGED

    def _may_wait_here(
        self, gate: Gate, limit: SpeedLimit, task: delivery_pb2.DeliveryTask
    ) -> bool:
        """Whether a delivery may wait for its grant in memory, its inbound message unacked,
        instead of going through the backlog queue (a publish and a delivery more): only
        while the key has no backlog queue (first come stays first served), as many as it
        grants soon (its backlog prefetch), while its slots are all in flight or free within
        a second (a result or a short gap frees one), and at most half the inbound prefetch
        over all keys (the inbound queue never stalls for one destination). A high-priority
        delivery always may (within that cap)."""
        if self._waiting_here >= self.settings.inbound_prefetch // 2:
            return False
        if task.priority == delivery_pb2.PRIORITY_HIGH:
            # Next in its key's heap whatever the backlog holds: the backlog queue's round
            # trip (behind whatever the inbound queue is moving there) would only delay it.
            return True
        wait = gate.state.wait(limit, self.clock())
        return (
            gate.backlog is None
            and (wait is None or wait < WAIT_HERE_SECONDS)
            and len(gate.waiters) < self.backlogs.prefetch(gate)
        )

    async def _wait_here(self, gate: Gate, task: delivery_pb2.DeliveryTask) -> bool:
        """Wait in the gate; True once the task was sent (or found sent already), False when
        it was let go (a pause, a stop, ``max_wait``): then it goes to the backlog."""
        future = self.gates.wait(gate, task.priority)
        self._waiting_here += 1
        try:
            grant_id = await granted(future, self.settings.max_wait)
        finally:
            self._waiting_here -= 1
        if grant_id is None:
            return False
        if self.sent.seen(task):
            self.gates.free(gate, grant_id)
            return True
        await self._send(gate, task, grant_id)
        return True

    async def _wait_and_send(self, gate: Gate, task: delivery_pb2.DeliveryTask) -> None:
        """A backlogged delivery's turn: wait in its gate for a grant, then send it."""
        ready = await self.pipeline.ready_for_backlog(task, gate, self)
        if ready is None or self.sent.seen(task):
            return  # the pipeline dealt with it (failed, parked), or it went already
        gate.set_limit(ready, self.gates.claimed_at)
        gate.last_active = self.clock()
        self.backlogs.follow_limit(gate)
        future = self.gates.wait(gate, task.priority)
        grant_id = await granted(future, self.settings.max_wait)
        if grant_id is None:
            raise Requeue  # let go, or back to the queue before RabbitMQ's consumer timeout
        if self.sent.seen(task):
            self.gates.free(gate, grant_id)
            return
        await self._send(gate, task, grant_id)

    async def _send(self, gate: Gate, task: delivery_pb2.DeliveryTask, grant_id: str) -> None:
        """Publish the task with its lease: one message (alone, or in a batch of tasks granted
        together, ``task_lanes.py``), routed to the senders and (its copy) to the state queue,
        so neither goes out without the other."""
        now = self.clock()
        task.grant_id = grant_id
        task.speed_key = gate.key
        task.shard = self.number
        task.granted_at.CopyFrom(to_timestamp(now))
        try:
            await self.tasks.publish(task)
        except BaseException:
            self.gates.free(gate, grant_id)
            self.book.forget_grant(grant_id, now)
            raise
        logger.debug(
            "%s granted %s (%s) by %s on shard %d",
            task.delivery.delivery_id,
            grant_id,
            gate.name,
            self.replica,
            self.number,
        )
        self.sent.add(task, now)
        metrics.scheduled("first" if task.attempt == 1 else "retry").inc()
        metrics.decided("granted").inc()

    def release(self, task: delivery_pb2.DeliveryTask) -> None:
        """A result came back: free its slot and let the next delivery of the key go."""
        if not task.grant_id:
            return
        gate = self.gates.get(task.delivery.server, task.speed_key)
        if gate is not None:
            self.gates.free(gate, task.grant_id)
        self.book.release(task.grant_id)

    # --- pauses ----------------------------------------------------------------------------

    def on_pause_change(self, domain: str, paused: bool) -> None:
        """Paused: the domain's own key stops granting and its consumer lets go (deliveries
        stay in its backlog queue); members of a group are parked by the pipeline instead."""
        for gate in self.gates:
            if gate.domain != domain:
                continue
            if paused:
                self.gates.let_go(gate)
                self._spawn(self.backlogs.stop_consumer(gate))
            else:
                self._spawn(self.backlogs.start_consumer(gate))
                self.gates.pump(gate)

    # --- prohibited hours (for stats) ------------------------------------------------------

    def note_held(self, domain: str, delivery_id: str, until: float) -> None:
        self.held.held(domain, delivery_id, until)

    def note_released(self, domain: str, delivery_id: str) -> None:
        self.held.released(domain, delivery_id)

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
                await self.book.shrink(self.clock() - SHRINK_AFTER)
                if rounds % every == 0:
                    await self._upkeep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("shard %d: upkeep failed", self.number)

    def _expire_leases(self) -> None:
        now = self.clock()
        before = now - self.settings.lease_timeout
        for gate in self.gates:
            for grant_id in gate.state.expired(before):
                logger.warning(
                    "shard %d: grant %s of %s had no result within %s; its slot is freed",
                    self.number,
                    grant_id,
                    gate.name,
                    format_duration(timedelta(seconds=self.settings.lease_timeout)),
                )
                self.gates.free(gate, grant_id)
                self.book.release(grant_id)
        self.book.forget_released(before)
        self.sent.forget_before(before)

    async def _upkeep(self) -> None:
        now = self.clock()
        await self.book.renew(self.settings.renew_after)
        for gate in self.gates:
            if self.backlogs.idle(gate, now):
                await self.backlogs.close_idle(gate)
            idle = now - gate.last_active
            if (
                gate.backlog is None
                and not gate.waiters
                and not gate.state.in_flight
                and idle > max(600.0, spacing(gate.limit) * 2)
            ):
                self.gates.forget(gate)

    def snapshot(self) -> scheduler_pb2.ShardSnapshot:
        return snapshot(self.number, self.replica, self.gates, self.held, self.pauses, self.clock())
