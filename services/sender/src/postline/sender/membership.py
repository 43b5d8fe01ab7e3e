"""How many sender processes share the destinations' connection limits (see ``pool.py``).

Each sender consumes ``sender.members``, a queue nobody publishes to: its consumer count is the
number of live senders, which every sender reads again each ``interval``. A sender joins
before it takes tasks and waits a little over two intervals, so that every other sender has
shrunk its share of each limit (closing idle sessions over it) before this one opens any;
one that leaves or dies drops out of the count with its connection to RabbitMQ (a dead one's
SMTP connections die with it), and the others grow their share at their next read.

A sender cut off from RabbitMQ is no longer counted by the others, so it stops holding idle
sessions and its deliveries wait (``share()`` is None) until it has rejoined; the sessions of
deliveries already under way at the cut end with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from postline.common.broker import Broker

logger = logging.getLogger(__name__)

MEMBERS_QUEUE = "sender.members"


class Membership:
    def __init__(
        self, broker: Broker, *, interval: float, on_change: Callable[[], None] = lambda: None
    ) -> None:
        self.broker = broker
        self.interval = interval
        self.on_change = on_change
        self.senders: int | None = None  # None: not (or no longer) counted by the others
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._task: asyncio.Task[None] | None = None
        self._joined_at = 0.0

    def share(self) -> int | None:
        return self.senders

    @property
    def settle_seconds(self) -> float:
        """How long a newcomer waits before it counts itself in."""
        return 2 * self.interval + 0.5

    async def join(self) -> None:
        """Be counted, then wait until every other sender has seen it."""
        self._channel = await self.broker.connection.channel()
        self._queue = await self._channel.declare_queue(MEMBERS_QUEUE, durable=True)
        await self._queue.consume(_refuse)
        self.broker.connection.close_callbacks.add(self._cut_off)
        self.broker.on_reconnect(self._rejoined)
        await self._settle()
        self._task = asyncio.create_task(self._watch(), name="sender-membership")

    async def leave(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()

    async def _settle(self) -> None:
        loop = asyncio.get_running_loop()
        self._joined_at = loop.time()
        await asyncio.sleep(self.settle_seconds)
        await self._read()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._read()
            except Exception as exc:  # the broker's trouble: the watchdog reports it
                logger.warning("counting senders failed: %s", exc)

    async def _read(self) -> None:
        if self._channel is None or self._channel.is_closed or self.broker.problem:
            return
        if asyncio.get_running_loop().time() - self._joined_at < self.settle_seconds:
            return  # rejoining: the others may not count us yet
        # The raw channel: aio-pika's robust channel answers a passive declaration of a queue
        # it declared before from its cache, with the count of that time.
        channel = await self._channel.get_underlay_channel()
        declared = await channel.queue_declare(MEMBERS_QUEUE, passive=True)
        self._set(max(1, declared.consumer_count or 1))

    def _set(self, count: int | None) -> None:
        if count != self.senders:
            logger.info("senders sharing the connection limits: %s (was %s)", count, self.senders)
            self.senders = count
            self.on_change()

    def _cut_off(self, *_: Any) -> None:
        self._set(None)

    async def _rejoined(self) -> None:
        self._joined_at = asyncio.get_running_loop().time()


async def _refuse(message: AbstractIncomingMessage) -> None:
    await message.reject(requeue=False)  # nothing is meant to be published here
