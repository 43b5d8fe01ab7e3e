"""The shard's state queue: what its owner keeps unacked so that a new owner can take over.

* A lease per grant in flight, acked when its result frees the slot. A new owner reads them
  all first and counts them: limits hold across a failover. The lease is the task itself: it
  is published once, to the senders with a copy to the state queue (RabbitMQ's ``CC``
  header), so a task never goes out without its lease and one publish does for both; what
  is kept (and re-published on renewal) is a ``SpeedLease`` made from it.
* A ``BacklogQueue`` record per backlog queue, published before the queue is made and acked
  once the queue is deleted: a new owner finds every queue that may hold deliveries.
* The shard token itself (``scheduler.owner.<k>``).

RabbitMQ closes a channel that keeps a delivery unacked past its consumer timeout (30 min by
default), so state kept unacked that long is re-published from time to time; the copy
replaces it. ("Held" is the prohibited hours' word: a delivery held until a window ends.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from postline.common.broker import Broker
from postline.common.broker.consumer import RECEIVED, PoisonMessage, decode
from postline.common.timeutil import from_timestamp
from postline.scheduler import metrics, queues
from postline.scheduler.busy import settle
from postline.scheduler.gates import Gate, Gates, gate_name
from postline.v1 import delivery_pb2, scheduler_pb2

logger = logging.getLogger(__name__)

STATE_TYPES = {
    m.DESCRIPTOR.full_name: m
    for m in (scheduler_pb2.SpeedLease, scheduler_pb2.BacklogQueue, delivery_pb2.DeliveryTask)
}
# Sender-selected distribution: the broker routes the message to these routing keys too.
CC_HEADER = "CC"


@dataclass
class Unacked:
    """A state message this owner keeps unacked (a lease, a backlog index, the token)."""

    message: ProtoMessage
    incoming: AbstractIncomingMessage
    since: float


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
        self.leases: dict[str, Unacked] = {}
        self.indexes: dict[str, Unacked] = {}  # gate name -> its BacklogQueue message
        self.token = Unacked(scheduler_pb2.ShardToken(shard=number), token, clock())
        self.released: dict[str, float] = {}  # grants freed before their lease came back
        self.renewing: set[str] = set()  # leases re-published, the copy not back yet
        self.opening: set[str] = set()  # backlog records published, not back yet

    # --- publishing ------------------------------------------------------------------------

    def lease_headers(self) -> dict[str, list[str]]:
        """The headers of a granted task's publish: a copy goes to the state queue as its
        lease."""
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
            self.spawn(settle(kept.incoming.ack()))
        if kept is None or grant_id in self.renewing:
            # Its lease (or a renewed copy) is still on its way: ack it when it arrives.
            self.renewing.discard(grant_id)
            self.released[grant_id] = self.clock()

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
            incoming = await state.get(no_ack=False, fail=False)
            if incoming is None:
                return indexes
            message = lease_of(self._decode(incoming))
            if isinstance(message, scheduler_pb2.SpeedLease):
                gate = self.gates.known(message.server, message.speed_key)
                gate.state.recover(message.grant_id, from_timestamp(message.granted_at))
                metrics.IN_FLIGHT.inc()
                self._keep(self.leases, message.grant_id, message, incoming)
            elif isinstance(message, scheduler_pb2.BacklogQueue):
                name = gate_name(message.server, message.speed_key)
                if name not in self.indexes:
                    indexes.append(message)
                self._keep(self.indexes, name, message, incoming)

    async def on_state_message(self, incoming: AbstractIncomingMessage) -> None:
        message = lease_of(self._decode(incoming))
        if isinstance(message, scheduler_pb2.SpeedLease):
            if self.released.pop(message.grant_id, None) is not None:
                await settle(incoming.ack())  # its result came first
                return
            self.renewing.discard(message.grant_id)
            self._keep(self.leases, message.grant_id, message, incoming)
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
            RECEIVED.labels(message.DESCRIPTOR.full_name).inc()
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

    def keep_token(self, incoming: AbstractIncomingMessage) -> None:
        self.token = Unacked(self.token.message, incoming, self.clock())

    # --- renewal ---------------------------------------------------------------------------

    async def renew(self, renew_after: float) -> None:
        """Re-publish what was kept longer than ``renew_after``: the copy replaces it."""
        due = self.clock() - renew_after
        for grant_id, kept in list(self.leases.items()):
            if kept.since < due:
                kept.since = self.clock()
                self.renewing.add(grant_id)
                await self.broker.publish(queues.state_key(self.number), kept.message)
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


def lease_of(message: ProtoMessage | None) -> ProtoMessage | None:
    """A state message as kept: a granted task's copy becomes its ``SpeedLease``."""
    if not isinstance(message, delivery_pb2.DeliveryTask):
        return message
    return scheduler_pb2.SpeedLease(
        grant_id=message.grant_id,
        speed_key=message.speed_key,
        delivery_id=message.delivery.delivery_id,
        attempt=message.attempt,
        granted_at=message.granted_at,
        shard=message.shard,
        domain=message.delivery.recipient_domain,
        server=message.delivery.server,
    )
