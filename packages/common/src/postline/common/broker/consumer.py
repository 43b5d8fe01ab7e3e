"""Typed consumers: decode protobuf, run the handler in the message's trace, ack after it.

A handler acks by returning: everything it produced downstream was confirmed by then. A
handler that raises has its message requeued after a pause (the failure is usually a
dependency: the broker, ClickHouse); one that raises ``Requeue`` gives it back at once, as
planned (no error); a body that cannot be decoded is a poison message and is dead-lettered to
``postline.dead``. A handler cancelled because its channel or process is closing gives its
message back too; if the channel is gone already the broker has done so.

Every consumer of a typed queue runs this loop (``consume``): those ``Broker.consume`` starts
and those a service starts on a channel it manages itself (a scheduler shard owner's).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from prometheus_client import Counter

from postline.common.broker.groups import BATCH_NAMES, BATCHES, handle_items, unbatch
from postline.common.semconv import METRIC_BROKER_RECEIVED, METRIC_BROKER_RECEIVED_ITEMS
from postline.common.telemetry import extract_context

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=ProtoMessage)

REQUEUE_PAUSE_SECONDS = 1.0

RECEIVED = Counter(METRIC_BROKER_RECEIVED, "broker messages received (decoded)", ["type"])
RECEIVED_ITEMS = Counter(METRIC_BROKER_RECEIVED_ITEMS, "items of received batches", ["type"])


class PoisonMessage(Exception):
    """The message can never be handled; dead-letter it instead of retrying forever."""


class Requeue(Exception):
    """Give the message back to its queue now: not a failure, so no pause and no log line
    (e.g. a waiting delivery the scheduler lets go, to be taken up again later)."""


@dataclass(frozen=True)
class MessageMeta:
    """What a handler may need of a RabbitMQ message besides its body: routing key, headers,
    whether it was delivered before. (Not a mail delivery: that is ``AcceptedDelivery``.)"""

    routing_key: str
    headers: Mapping[str, Any]
    redelivered: bool

    @property
    def not_before(self) -> float | None:
        value = self.headers.get("x-postline-not-before")
        return float(value) if value is not None else None


Handler = Callable[[M, MessageMeta], Awaitable[None]]
# One message class, or several keyed by their full protobuf name (for mixed queues).
MessageTypes = type[ProtoMessage] | Mapping[str, type[ProtoMessage]]


# The full protobuf name of a message's body (set by ``Broker.publish``).
TYPE_HEADER = "x-postline-type"


def message_type(headers: Mapping[str, Any]) -> str:
    """The ``x-postline-type`` of a message ('' when it has none)."""
    raw = headers.get(TYPE_HEADER, "")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def decode(body: bytes, headers: Mapping[str, Any], types: MessageTypes) -> ProtoMessage:
    """Decode a body as its ``x-postline-type`` header says (or the only type expected). A
    batch of an expected type (``broker/groups.py``) is expected too."""
    name = message_type(headers)
    batch = BATCH_NAMES.get(name)
    if batch is not None:
        expected = [types] if isinstance(types, type) else types.values()
        if any(BATCHES.get(t, (None,))[0] is batch for t in expected):
            return batch.FromString(body)
    if isinstance(types, type):
        return types.FromString(body)
    if name not in types:
        raise PoisonMessage(f"unexpected message type {name!r}")
    return types[name].FromString(body)


async def handle(handler: Handler[Any], message: ProtoMessage, meta: MessageMeta) -> None:
    """Run the handler on a message, or on each item of a batch (at once, each in its trace)."""
    items = unbatch(message)
    received, received_items = _counters(message.DESCRIPTOR.full_name)
    received.inc()
    if items is None:
        await handler(message, meta)
    else:
        received_items.inc(len(items))
        await handle_items(items, lambda item: handler(item, meta))


@functools.cache
def _counters(type_name: str) -> tuple[Counter, Counter]:
    """The ``RECEIVED`` and ``RECEIVED_ITEMS`` counters of a message type, looked up once
    (``labels()`` costs about a microsecond, and every broker message is counted)."""
    return RECEIVED.labels(type_name), RECEIVED_ITEMS.labels(type_name)


def consume(
    queue: AbstractQueue, types: MessageTypes, handler: Handler[Any]
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """The message callback of a consumer of ``queue`` (``Broker.subscribe`` starts it)."""

    async def on_message(incoming: AbstractIncomingMessage) -> None:
        headers = dict(incoming.headers or {})
        meta = MessageMeta(incoming.routing_key or "", headers, bool(incoming.redelivered))
        try:
            message = decode(incoming.body, headers, types)
        except (DecodeError, PoisonMessage) as exc:
            logger.error("%s: undecodable message dead-lettered: %s", queue.name, exc)
            await settle(incoming.reject(requeue=False), queue.name)
            return
        token = extract_context(headers)
        try:
            await handle(handler, message, meta)
        except Requeue:
            await settle(incoming.nack(requeue=True), queue.name)
        except PoisonMessage as exc:
            logger.error("%s: poison message dead-lettered: %s", queue.name, exc)
            await settle(incoming.reject(requeue=False), queue.name)
        except asyncio.CancelledError:
            # Its channel or the process is closing: on a channel already gone (a shard owner
            # losing its shard has many messages in flight) there is nothing to say.
            await settle(incoming.nack(requeue=True), queue.name, closing=True)
            raise
        except Exception:
            logger.exception("%s: handler failed, message requeued", queue.name)
            await asyncio.sleep(REQUEUE_PAUSE_SECONDS)
            await settle(incoming.nack(requeue=True), queue.name)
        else:
            await settle(incoming.ack(), queue.name)
        finally:
            token.detach()

    return on_message


async def settle(settling: Awaitable[None], queue_name: str, *, closing: bool = False) -> None:
    """Ack, nack or reject; on a channel that closed meanwhile (the connection dropped) the
    broker has requeued the message already and redelivers it, so there is nothing to do.
    ``closing``: the channel was expected to go (logged at debug level only)."""
    try:
        await settling
    except (AMQPError, ChannelInvalidStateError, ConnectionError, RuntimeError) as exc:
        logger.log(
            logging.DEBUG if closing else logging.INFO,
            "%s: message not settled, its channel closed (%r); redelivered",
            queue_name,
            exc,
        )
