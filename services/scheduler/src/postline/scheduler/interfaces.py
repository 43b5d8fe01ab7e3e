"""What the scheduler's two sides know of each other.

The *pipeline* (``handlers.py``) decides what happens to a delivery from the policy; the
*runtime* (``shard.py`` and the parts it is made of) grants speed slots, keeps backlogs and
leases, and consumes a shard's queues. Each sees the other only through the Protocols here,
so neither imports the other; ``service.py`` puts them together.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from postline.common.broker.consumer import MessageMeta
from postline.common.policy import SpeedLimit
from postline.v1 import delivery_pb2


class GrantOutcome(StrEnum):
    """What the runtime did with a task the pipeline submitted for a speed grant."""

    GRANTED = "granted"
    BACKLOGGED = "backlogged"
    DUPLICATE = "duplicate"  # this owner already sent that attempt
    PAUSED = "paused"  # a paused member of a group: the caller parks it


class SpeedKey(Protocol):
    """One speed key of one server, as the pipeline sees it."""

    @property
    def key(self) -> str: ...

    @property
    def domain(self) -> str | None:
        """The domain of a per-domain key (None for a group)."""
        ...


class Shard(Protocol):
    """A shard this replica owns, as the pipeline uses it."""

    @property
    def number(self) -> int: ...

    async def submit(
        self, task: delivery_pb2.DeliveryTask, server: str, limit: SpeedLimit
    ) -> GrantOutcome:
        """Grant at once if the key allows it, else queue in the key's backlog."""
        ...

    def release(self, task: delivery_pb2.DeliveryTask) -> None:
        """A result came back: free its slot."""
        ...

    def note_held(self, domain: str, delivery_id: str, until: float) -> None: ...

    def note_released(self, domain: str, delivery_id: str) -> None: ...


class Pipeline(Protocol):
    """The policy side, as the runtime calls it."""

    async def on_accepted(
        self, delivery: delivery_pb2.AcceptedDelivery, meta: MessageMeta, shard: Shard
    ) -> None: ...

    async def on_parked(
        self, task: delivery_pb2.DeliveryTask, meta: MessageMeta, shard: Shard
    ) -> None: ...

    async def on_result(
        self, result: delivery_pb2.DeliveryResult, meta: MessageMeta, shard: Shard
    ) -> None: ...

    async def ready_for_backlog(
        self, task: delivery_pb2.DeliveryTask, gate: SpeedKey, shard: Shard
    ) -> SpeedLimit | None:
        """A backlogged delivery's turn: the limit it waits under, or None when the pipeline
        dealt with it otherwise (failed, parked, handed over)."""
        ...
