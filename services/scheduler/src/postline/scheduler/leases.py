"""The shard's state queue: what its owner keeps unacked so that a new owner can take over.

* A lease for the grants in flight, acked when the results of all its grants freed their
  slots. A new owner reads them all first and counts them: limits hold across a failover.
  The lease is the task itself: it is published once, to the senders with a copy to the
  state queue (RabbitMQ's ``CC`` header), so a task never goes out without its lease and one
  publish does for both. Tasks granted together travel as one ``DeliveryTasks``
  (``task_lanes.py``), whose copy is one lease covering all its grants: each result frees its
  own slot at once, and the copy is acked when the last one came. What is kept of each grant
  (and re-published on renewal) is a ``SpeedLease`` made from its task.
* A lease of several grants, some of them done, would be counted whole by a new owner (a
  message is acked whole), their slots taken until ``lease_timeout``: once part of it has been
  done for ``SHRINK_AFTER`` seconds, the grants still in flight are re-published as
  ``SpeedLease`` copies, which replace it (as a renewal does). In the normal run a batch's
  grants all end within that time and nothing is re-published.
* A ``BacklogQueue`` record per backlog queue, published before the queue is made and acked
  once the queue is deleted: a new owner finds every queue that may hold deliveries.
* The shard token itself (``scheduler.owner.<k>``).

RabbitMQ closes a channel that keeps a delivery unacked past its consumer timeout (30 min by
default), so state kept unacked that long is re-published from time to time; the copy
replaces it. ("Held" is the prohibited hours' word: a delivery held until a window ends.)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from prometheus_client import Counter

from postline.common.broker import Broker
from postline.common.broker.consumer import RECEIVED, PoisonMessage, decode
from postline.common.runtime import within
from postline.common.timeutil import from_timestamp
from postline.scheduler import metrics, queues
from postline.scheduler.busy import settle
from postline.scheduler.gates import Gate, Gates, gate_name
from postline.v1 import delivery_pb2, scheduler_pb2

logger = logging.getLogger(__name__)

STATE_TYPES = {
    m.DESCRIPTOR.full_name: m
    for m in (scheduler_pb2.SpeedLease, scheduler_pb2.BacklogQueue, delivery_pb2.DeliveryTask)
}  # and a DeliveryTasks, a batch's copy (decoded as a batch of an expected type)
# Sender-selected distribution: the broker routes the message to these routing keys too.
CC_HEADER = "CC"
# How long one read of the state queue may take (aio-pika's own default for Queue.get).
GET_SECONDS = 5.0
# A lease of several grants is re-published without those done once one was done this long.
SHRINK_AFTER = 1.0


@dataclass
class Unacked:
    """A state message this owner keeps unacked (a lease, a backlog index, the token)."""

    message: ProtoMessage
    incoming: AbstractIncomingMessage
    since: float


@dataclass(eq=False)
class Lease:
    """A lease message kept unacked (a granted task's copy, a batch's, or a ``SpeedLease``):
    the grants it covers still in flight; acked once there are none."""

    grants: dict[str, scheduler_pb2.SpeedLease]
    incoming: AbstractIncomingMessage
    since: float
    done_since: float | None = None  # when one of its grants ended, others still in flight


class StateBook:
    def __init__(
        self,
        number: int,
        token: AbstractIncomingMessage,
        *,
        broker: Broker,
        gates: Gates,
        clock: Callable[[], float],
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.number = number
        self.broker = broker
        self.gates = gates
        self.clock = clock
        self.spawn = spawn
        self.leases: dict[str, Lease] = {}  # grant id -> the lease covering it
        self.indexes: dict[str, Unacked] = {}  # gate name -> its BacklogQueue message
        self.token = Unacked(scheduler_pb2.ShardToken(shard=number), token, clock())
        self.released: dict[str, float] = {}  # grants freed before their lease came back
        self.renewing: set[str] = set()  # leases re-published, the copy not back yet
        self.opening: set[str] = set()  # backlog records published, not back yet
        self.partly_done: set[Lease] = set()  # leases of several grants, some done

    # --- publishing ------------------------------------------------------------------------

    def lease_headers(self) -> dict[str, list[str]]:
        """The headers of a granted task's (or batch's) publish: a copy goes to the state
        queue as its lease."""
        return {CC_HEADER: [queues.state_key(self.number)]}

    async def publish_index(self, gate: Gate, queue_name: str) -> None:
        """The record of a backlog queue about to be made (unless one is kept already)."""
        if gate.name in self.indexes:
            return
        self.opening.add(gate.name)  # its record is on its way back to us
        index = scheduler_pb2.BacklogQueue(
            speed_key=gate.key, queue=queue_name, shard=self.number, server=gate.server
        )
        await self.broker.publish(queues.state_key(self.number), index)

    # --- settling --------------------------------------------------------------------------

    def release(self, grant_id: str) -> None:
        """A grant's result came: ack its lease (now, or when it arrives)."""
        kept = self.leases.pop(grant_id, None)
        if kept is not None:
            self._done(kept, grant_id)
        if kept is None or grant_id in self.renewing:
            # Its lease (or a renewed copy) is still on its way: ack it when it arrives.
            self.renewing.discard(grant_id)
            self.released[grant_id] = self.clock()

    def _done(self, lease: Lease, grant_id: str) -> None:
        """One grant of the lease is no longer in flight (or moved to a renewed copy): ack
        the lease when none is left."""
        lease.grants.pop(grant_id, None)
        if lease.grants:
            if lease.done_since is None:
                lease.done_since = self.clock()
                self.partly_done.add(lease)
            return
        self.partly_done.discard(lease)
        self.spawn(settle(lease.incoming.ack()))

    def forget_grant(self, grant_id: str, now: float) -> None:
        """A grant whose lease may or may not have gone out (its task was not sent)."""
        self.released[grant_id] = now  # its lease, if it went out, is acked on arrival

    async def backlog_deleted(self, gate: Gate) -> None:
        index = self.indexes.pop(gate.name, None)
        if index is not None:
            await settle(index.incoming.ack())

    def forget_released(self, before: float) -> None:
        for grant_id, at in list(self.released.items()):
            if at < before:
                del self.released[grant_id]

    # --- reading ---------------------------------------------------------------------------

    async def recover(self, state: AbstractQueue) -> list[scheduler_pb2.BacklogQueue]:
        """Read every state message left by previous owners (they stay unacked with us)."""
        indexes: list[scheduler_pb2.BacklogQueue] = []
        while True:
            # Bounded here, not by aio-pika's timeout: its asyncio.wait_for can lose a cancel
            # on Python 3.11 (a replica stopped while it takes the shard over went on).
            incoming = await within(state.get(no_ack=False, fail=False, timeout=None), GET_SECONDS)
            if incoming is None:
                return indexes
            message = self._decode(incoming)
            grants = lease_grants(message)
            if grants is not None:
                # Every grant of the lease counts, done or not (a batch's copy is acked whole):
                # over-counting for a while is safe, under-counting is not.
                for grant in grants:
                    gate = self.gates.known(grant.server, grant.speed_key)
                    if grant.grant_id not in self.leases:
                        metrics.IN_FLIGHT.inc()
                    gate.state.recover(grant.grant_id, from_timestamp(grant.granted_at))
                self._keep_lease(grants, incoming)
            elif isinstance(message, scheduler_pb2.BacklogQueue):
                name = gate_name(message.server, message.speed_key)
                if name not in self.indexes:
                    indexes.append(message)
                self._keep(self.indexes, name, message, incoming)

    async def on_state_message(self, incoming: AbstractIncomingMessage) -> None:
        message = self._decode(incoming)
        grants = lease_grants(message)
        if grants is not None:
            # Those whose result came first are done already.
            grants = [g for g in grants if self.released.pop(g.grant_id, None) is None]
            if not grants:
                await settle(incoming.ack())
                return
            for grant in grants:
                self.renewing.discard(grant.grant_id)
            self._keep_lease(grants, incoming)
        elif isinstance(message, scheduler_pb2.BacklogQueue):
            name = gate_name(message.server, message.speed_key)
            gate = self.gates.by_name.get(name)
            if name not in self.opening and (gate is None or gate.backlog is None):
                await settle(incoming.ack())  # a renewed copy of a queue deleted since
                return
            self.opening.discard(name)
            self._keep(self.indexes, name, message, incoming)

    def _decode(self, incoming: AbstractIncomingMessage) -> ProtoMessage | None:
        try:
            message = decode(incoming.body, dict(incoming.headers or {}), STATE_TYPES)
            _received(message.DESCRIPTOR.full_name).inc()
            return message
        except (DecodeError, PoisonMessage) as exc:
            logger.error("shard %d: unreadable state message dropped: %s", self.number, exc)
            self.spawn(settle(incoming.reject(requeue=False)))
            return None

    def _keep(
        self,
        kept: dict[str, Unacked],
        key: str,
        message: ProtoMessage,
        incoming: AbstractIncomingMessage,
    ) -> None:
        """Keep the newest copy unacked; a renewed copy replaces (acks) the older one."""
        older = kept.get(key)
        kept[key] = Unacked(message, incoming, self.clock())
        if older is not None:
            self.spawn(settle(older.incoming.ack()))

    def _keep_lease(
        self, grants: list[scheduler_pb2.SpeedLease], incoming: AbstractIncomingMessage
    ) -> None:
        """Keep a lease message unacked for its grants; a renewed copy of a grant replaces
        the older lease's hold on it (the older one is acked when it covers none)."""
        lease = Lease({g.grant_id: g for g in grants}, incoming, self.clock())
        for grant_id in lease.grants:
            older = self.leases.get(grant_id)
            self.leases[grant_id] = lease
            if older is not None and older is not lease:
                self._done(older, grant_id)

    def keep_token(self, incoming: AbstractIncomingMessage) -> None:
        self.token = Unacked(self.token.message, incoming, self.clock())

    # --- renewal ---------------------------------------------------------------------------

    async def renew(self, renew_after: float) -> None:
        """Re-publish what was kept longer than ``renew_after``: the copy replaces it."""
        due = self.clock() - renew_after
        for lease in {id(lease): lease for lease in self.leases.values()}.values():
            if lease.since < due:
                await self._republish(lease)
        for kept in list(self.indexes.values()):
            if kept.since < due:
                kept.since = self.clock()
                await self.broker.publish(queues.state_key(self.number), kept.message)
        if self.token.since < due:
            self.token.since = self.clock()
            await self.broker.publish(
                queues.owner_lock(self.number), scheduler_pb2.ShardToken(shard=self.number)
            )
            await settle(self.token.incoming.ack())  # the broker hands us the new one

    async def shrink(self, before: float) -> None:
        """Leases of several grants, part of them done since before ``before``: their grants
        still in flight are re-published, so that a new owner does not count the others."""
        due = [
            lease
            for lease in self.partly_done
            if lease.done_since is not None and lease.done_since < before
        ]
        for lease in due:
            await self._republish(lease)

    async def _republish(self, lease: Lease) -> None:
        """A ``SpeedLease`` copy of each grant of the lease still in flight: each copy, back
        in the state queue, replaces the lease's hold on its grant."""
        lease.since = self.clock()
        lease.done_since = None
        self.partly_done.discard(lease)
        for grant_id, grant in list(lease.grants.items()):
            if grant_id in self.renewing:
                continue  # a copy is on its way already
            self.renewing.add(grant_id)
            await self.broker.publish(queues.state_key(self.number), grant)


@functools.cache
def _received(type_name: str) -> Counter:
    """The ``RECEIVED`` counter of a state message's type, looked up once (a lease message
    comes back for every message of tasks)."""
    return RECEIVED.labels(type_name)


def lease_grants(message: ProtoMessage | None) -> list[scheduler_pb2.SpeedLease] | None:
    """The grants a lease message covers, as kept (None for a message that is no lease): a
    granted task's copy, a batch's (``DeliveryTasks``), or a ``SpeedLease`` (renewed, or
    made by an earlier version)."""
    if isinstance(message, scheduler_pb2.SpeedLease):
        return [message]
    if isinstance(message, delivery_pb2.DeliveryTask):
        return [speed_lease(message)]
    if isinstance(message, delivery_pb2.DeliveryTasks):
        return [speed_lease(task) for task in message.tasks]
    return None


def speed_lease(task: delivery_pb2.DeliveryTask) -> scheduler_pb2.SpeedLease:
    """What is kept of a granted task as its lease."""
    return scheduler_pb2.SpeedLease(
        grant_id=task.grant_id,
        speed_key=task.speed_key,
        delivery_id=task.delivery.delivery_id,
        attempt=task.attempt,
        granted_at=task.granted_at,
        shard=task.shard,
        domain=task.delivery.recipient_domain,
        server=task.delivery.server,
    )
