"""Consumers on a shard owner's channel: like postline.common.broker.consumer, plus a quiet
``Requeue`` and no noise when the channel is gone.

When a shard is lost (the owner's connection dropped) its channel closes; the broker gives
every unacked message back to the queue for the next owner, so a handler cancelled then has
nothing left to settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from google.protobuf.message import DecodeError

from postline.common.broker.consumer import (
    MessageMeta,
    MessageTypes,
    PoisonMessage,
    decode,
    handle,
)
from postline.common.telemetry import extract_context

logger = logging.getLogger(__name__)

REQUEUE_PAUSE_SECONDS = 1.0

Handler = Callable[[Any, MessageMeta], Awaitable[None]]


class Requeue(Exception):
    """Give the message back to its queue (e.g. a waiting delivery the owner lets go)."""


async def _settle(action: Awaitable[None], what: str) -> None:
    try:
        await action
    except (aio_pika.exceptions.AMQPError, aio_pika.exceptions.ChannelInvalidStateError) as exc:
        # The channel closed under us: the broker requeues the message by itself.
        logger.debug("%s not settled (channel closed: %s)", what, exc)


async def subscribe(
    queue: AbstractQueue,
    types: MessageTypes,
    handler: Handler,
    *,
    arguments: Mapping[str, Any] | None = None,
) -> str:
    """Start consuming ``queue``; returns the consumer tag."""

    async def on_message(incoming: AbstractIncomingMessage) -> None:
        headers = dict(incoming.headers or {})
        meta = MessageMeta(incoming.routing_key or "", headers, bool(incoming.redelivered))
        try:
            message = decode(incoming.body, headers, types)
        except (DecodeError, PoisonMessage) as exc:
            logger.error("%s: undecodable message dead-lettered: %s", queue.name, exc)
            await _settle(incoming.reject(requeue=False), "reject")
            return
        token = extract_context(headers)
        try:
            await handle(handler, message, meta)
        except Requeue:
            await _settle(incoming.nack(requeue=True), "requeue")
        except PoisonMessage as exc:
            logger.error("%s: poison message dead-lettered: %s", queue.name, exc)
            await _settle(incoming.reject(requeue=False), "reject")
        except asyncio.CancelledError:
            raise  # the channel is closing; the broker requeues
        except Exception:
            logger.exception("%s: handler failed, message requeued", queue.name)
            await asyncio.sleep(REQUEUE_PAUSE_SECONDS)
            await _settle(incoming.nack(requeue=True), "requeue")
        else:
            await _settle(incoming.ack(), "ack")
        finally:
            token.detach()

    return await queue.consume(on_message, arguments=dict(arguments) if arguments else None)


class Consumers:
    """The consumers on one shard owner's channel, each with its own prefetch."""

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
            if types is None:
                tag = await queue.consume(handler)
            else:
                tag = await subscribe(queue, types, handler)
        self._running.append((queue, tag))
        return tag

    async def stop(self, queue: AbstractQueue, tag: str) -> None:
        self._running = [(q, t) for q, t in self._running if t != tag]
        with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
            await queue.cancel(tag)

    async def stop_all(self) -> None:
        for queue, tag in list(self._running):
            await self.stop(queue, tag)
