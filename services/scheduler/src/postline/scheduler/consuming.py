"""The consumers on a shard owner's channel, each with its own prefetch.

A shard's queues (state, results, inbound, urgent, backlogs) are all read on the channel that
holds the shard's token: when the shard is lost the channel closes and the broker gives every
unacked message back for the next owner. Typed messages go through the one consumer loop of
``postline.common.broker.consumer`` (a handler lets a delivery go with its ``Requeue``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from postline.common.broker.consumer import MessageTypes, consume


class Consumers:
    """The consumers on one shard owner's channel."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._qos_lock = asyncio.Lock()
        self._running: list[tuple[AbstractQueue, str]] = []

    async def start(
        self,
        queue: AbstractQueue,
        prefetch: int,
        handler: Callable[..., Awaitable[None]],
        types: MessageTypes | None = None,
    ) -> str:
        """Consume ``queue``: typed messages to ``handler(message, meta)``, or raw incoming
        messages to ``handler(incoming)`` when ``types`` is None. Returns the consumer tag."""
        # basic.qos without "global" limits each consumer created after it on the channel, so
        # every consumer gets its own prefetch.
        async with self._qos_lock:
            await self.channel.set_qos(prefetch_count=prefetch)
            callback = handler if types is None else consume(queue, types, handler)
            tag = await queue.consume(callback)
        self._running.append((queue, tag))
        return tag

    async def stop(self, queue: AbstractQueue, tag: str) -> None:
        self._running = [(q, t) for q, t in self._running if t != tag]
        with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
            await queue.cancel(tag)

    async def stop_all(self) -> None:
        for queue, tag in list(self._running):
            await self.stop(queue, tag)
