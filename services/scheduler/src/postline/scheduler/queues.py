"""The scheduler's own queues, besides the shared topology (postline.common.broker.topology).

==================================  ===========================================================
queue                               what it holds
==================================  ===========================================================
``scheduler.owner.<k>``             a ``ShardToken`` (single-active-consumer, at most one
                                    ready): the replica holding it owns shard k; when that
                                    replica dies the broker hands it to the next one
``scheduler.state.<k>``             the owner's bookkeeping, kept unacked while it owns: a
                                    lease per speed slot in use (the granted ``DeliveryTask``'s
                                    copy, or a renewed ``SpeedLease``) and a ``BacklogQueue``
                                    per backlog queue; a new owner reads them all first
``scheduler.backlog.<k>.<key>``     one speed key's deliveries waiting for a slot (priority
                                    queue 0..3), created when the key is at its limit and
                                    deleted once empty and idle
``scheduler.control``               a stream of ``DomainPause`` (pause/resume), read from its
                                    start by every replica
(exclusive, per replica)            ``ShardSnapshot`` of every shard (``scheduler.stats.<k>``)
==================================  ===========================================================

Everything is published through the ``postline`` exchange like the rest of Postline.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractQueue

from postline.common.broker.topology import DEAD_LETTER_EXCHANGE, EXCHANGE, MAX_PRIORITY

CONTROL_STREAM = "scheduler.control"
CONTROL_KEY = "scheduler.control"
STATS_BINDING = "scheduler.stats.*"
# A snapshot older than this says nothing useful about a shard.
STATS_TTL_MS = 5000

_DEAD: dict[str, Any] = {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
_UNSAFE = re.compile(r"[^a-z0-9.:_-]")


def owner_lock(shard: int) -> str:
    return f"scheduler.owner.{shard}"


def state_queue(shard: int) -> str:
    return f"scheduler.state.{shard}"


def state_key(shard: int) -> str:
    return f"scheduler.state.{shard}"


def stats_key(shard: int) -> str:
    return f"scheduler.stats.{shard}"


def backlog_queue(shard: int, speed_key: str) -> str:
    """``scheduler.backlog.<k>.<speed key>``; long or odd keys get a digest (names are at
    most 255 bytes and also serve as routing keys)."""
    name = f"scheduler.backlog.{shard}.{speed_key}"
    if len(name) <= 200 and not _UNSAFE.search(speed_key):
        return name
    digest = hashlib.sha256(speed_key.encode()).hexdigest()[:16]
    safe = _UNSAFE.sub("_", speed_key.lower())[:120]
    return f"scheduler.backlog.{shard}.{safe}.{digest}"


async def declare_lock(channel: AbstractChannel, shard: int) -> AbstractQueue:
    # Single active consumer: the token goes to one replica only, and to the next one in line
    # when that replica's connection goes. At most one token waits (drop-head), however many
    # replicas put one in at start.
    arguments: dict[str, Any] = {"x-single-active-consumer": True, "x-max-length": 1}
    queue = await channel.declare_queue(owner_lock(shard), durable=True, arguments=arguments)
    await queue.bind(EXCHANGE, routing_key=owner_lock(shard))
    return queue


async def declare_state(channel: AbstractChannel, shard: int) -> AbstractQueue:
    queue = await channel.declare_queue(state_queue(shard), durable=True, arguments=_DEAD)
    await queue.bind(EXCHANGE, routing_key=state_key(shard))
    return queue


async def declare_backlog(channel: AbstractChannel, name: str) -> AbstractQueue:
    queue = await channel.declare_queue(
        name, durable=True, arguments={**_DEAD, "x-max-priority": MAX_PRIORITY}
    )
    await queue.bind(EXCHANGE, routing_key=name)
    return queue


async def declare_control(channel: AbstractChannel) -> AbstractQueue:
    # Pauses are rare and small; the cap only guards against a runaway publisher.
    arguments: dict[str, Any] = {"x-queue-type": "stream", "x-max-length-bytes": 64 * 1024 * 1024}
    queue = await channel.declare_queue(CONTROL_STREAM, durable=True, arguments=arguments)
    await queue.bind(EXCHANGE, routing_key=CONTROL_KEY)
    return queue


async def declare_stats(channel: AbstractChannel) -> AbstractQueue:
    """A private queue per replica receiving every shard's snapshots."""
    queue = await channel.declare_queue(
        exclusive=True,
        auto_delete=True,
        arguments=dict[str, Any]({"x-message-ttl": STATS_TTL_MS, "x-max-length": 1000}),
    )
    await queue.bind(EXCHANGE, routing_key=STATS_BINDING)
    return queue
