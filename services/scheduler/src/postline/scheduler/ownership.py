"""Which replica runs which shard.

Every replica subscribes to every shard's ``scheduler.owner.<k>`` queue (single active
consumer) and puts a token in it. The broker delivers the token to one replica only, the
active consumer; that replica owns the shard and only then subscribes to the shard's inbound,
results, state and backlog queues, all on the one channel that holds the token. When the
replica dies, or that channel fails, the broker requeues the token and everything unacked, and
hands the token to the next replica in line, which takes over from the shard's state queue.

So a shard's inbound and results are always consumed by the same process (its speed counts
see both the grants and the results), and there is never a second owner while the first one
still holds its channel. The owner's consumers use their own connection (not the publishing
one): losing it loses every shard at once, cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from postline.common.broker import Broker
from postline.common.broker.connection import CLOSE_SECONDS, connection_options
from postline.common.redact import redact_url
from postline.common.runtime import within
from postline.scheduler import metrics, queues
from postline.scheduler.shard import ShardRuntime
from postline.v1 import scheduler_pb2

logger = logging.getLogger(__name__)

RuntimeFactory = Callable[
    [int, AbstractConnection, AbstractChannel, AbstractIncomingMessage], ShardRuntime
]
RECONNECT_SECONDS = 2.0
# A stop hands the shards back cleanly (ShardRuntime.stop: its handlers get up to 10 s), but
# never waits on the broker for ever: past this, the connection is closed and RabbitMQ gives
# back whatever the shards held (the next owner counts their leases).
HANDBACK_SECONDS = 20.0


class Ownership:
    def __init__(self, url: str, broker: Broker, shards: int, factory: RuntimeFactory) -> None:
        self.url = url
        self.broker = broker
        self.shards = shards
        self.factory = factory
        self.runtimes: dict[int, ShardRuntime] = {}
        self.connected = asyncio.Event()
        self.connection: AbstractConnection | None = None
        self.stopping = False

    async def run(self, stop: asyncio.Event) -> None:
        """Own what the broker gives us until ``stop``; reconnect when the connection drops."""
        while not stop.is_set():
            try:
                connection = await aio_pika.connect(self.url, **connection_options(self.url))
            except (aio_pika.exceptions.AMQPError, OSError) as exc:
                logger.warning(
                    "%s: cannot connect for shards (%s); retrying", redact_url(self.url), exc
                )
                with contextlib.suppress(TimeoutError):
                    await within(stop.wait(), RECONNECT_SECONDS)
                continue
            self.connection = connection
            try:
                await self._serve(connection, stop)
            finally:
                self.connected.clear()
                self.connection = None
                for runtime in list(self.runtimes.values()):
                    runtime.lost()
                self.runtimes.clear()
                metrics.OWNED_SHARDS.set(0)
                with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError, TimeoutError):
                    await within(connection.close(), CLOSE_SECONDS)

    async def _serve(self, connection: AbstractConnection, stop: asyncio.Event) -> None:
        closed = asyncio.Event()
        connection.close_callbacks.add(lambda *_: closed.set())
        self.connected.set()
        loops = [
            asyncio.create_task(self._shard(connection, k, closed)) for k in range(self.shards)
        ]
        ended = [asyncio.create_task(stop.wait()), asyncio.create_task(closed.wait())]
        try:
            await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
            if not closed.is_set():
                self.stopping = True
                logger.info("handing back %d shards", len(self.runtimes))
                try:
                    await within(
                        asyncio.gather(*(r.stop() for r in list(self.runtimes.values()))),
                        HANDBACK_SECONDS,
                    )
                except TimeoutError:
                    logger.warning(
                        "shards not handed back within %.0f s; closing the connection (the "
                        "broker gives back what they held)",
                        HANDBACK_SECONDS,
                    )
            else:
                logger.warning("shard connection lost; every owned shard is handed over")
        finally:
            pending = {*loops, *ended}
            while pending:
                # Cancelled again until they end: a cancel can be lost on Python 3.11 inside a
                # library's asyncio.wait_for (aio-pika's Queue.get, while a shard is taken over).
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=CLOSE_SECONDS)

    async def _shard(self, connection: AbstractConnection, shard: int, lost: asyncio.Event) -> None:
        while not lost.is_set() and not self.stopping:
            try:
                await self._own(connection, shard)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("shard %d: failed; subscribing again", shard)
            # Back in line (a channel error put us at its end); a little jitter keeps replicas
            # that lost the same broker from reconnecting in lockstep.
            await asyncio.sleep(random.uniform(0.1, 0.5))

    async def _own(self, connection: AbstractConnection, shard: int) -> None:
        """Wait for the shard's token, run the shard until this channel ends."""
        channel = await connection.channel()
        closed = asyncio.Event()
        channel.close_callbacks.add(lambda *_: closed.set())
        token: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()
        ending = asyncio.ensure_future(closed.wait())
        runtime: ShardRuntime | None = None

        async def on_token(incoming: AbstractIncomingMessage) -> None:
            if not token.done():
                token.set_result(incoming)
            elif runtime is not None:
                runtime.keep_token(incoming)  # a renewed token

        try:
            lock = await queues.declare_lock(channel, shard)
            await channel.set_qos(prefetch_count=1)
            await lock.consume(on_token)
            # Make sure a token exists (the queue keeps at most one waiting).
            await self.broker.publish(
                queues.owner_lock(shard), scheduler_pb2.ShardToken(shard=shard)
            )
            waiting: set[asyncio.Future[Any]] = {token, ending}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not token.done() or self.stopping:
                # A replica that is stopping takes over nothing (another handing back its
                # shards at the same moment): the token, unacked, goes back with the channel.
                return
            runtime = self.factory(shard, connection, channel, token.result())
            await runtime.start()
            if self.stopping:
                return  # stopped while taking over: the shard goes back with the channel
            self.runtimes[shard] = runtime
            metrics.OWNED_SHARDS.set(len(self.runtimes))
            await ending
        finally:
            ending.cancel()
            if runtime is not None:
                runtime.lost()
                if self.runtimes.get(shard) is runtime:
                    del self.runtimes[shard]
                metrics.OWNED_SHARDS.set(len(self.runtimes))
                logger.info("shard %d no longer owned here", shard)
            if not channel.is_closed:
                with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError, TimeoutError):
                    await within(channel.close(), CLOSE_SECONDS)
