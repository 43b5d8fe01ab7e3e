"""One connection per process, a confirmed publish channel, and consumers of typed messages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
)
from google.protobuf.message import Message as ProtoMessage
from pamqp.commands import Basic
from prometheus_client import Counter

from postline.common.broker.consumer import TYPE_HEADER, Handler, MessageTypes, consume
from postline.common.broker.errors import BrokerUnavailable
from postline.common.broker.events import Event, EventPublisher
from postline.common.broker.groups import GroupPublisher
from postline.common.broker.topology import EXCHANGE, Topology, delay_bucket, delay_exchange
from postline.common.semconv import METRIC_BROKER_PUBLISHED
from postline.common.telemetry import WAIT_HEADER, inject_context

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=ProtoMessage)

PUBLISHED = Counter(METRIC_BROKER_PUBLISHED, "broker messages published (confirmed)", ["type"])


@dataclass(frozen=True)
class Subscription:
    """A running consumer. ``cancel()`` asks the broker to deliver no more messages to it;
    messages already delivered stay with their handlers, which still ack them (a graceful
    stop: cancel, let the handlers finish, then close)."""

    queue: AbstractQueue
    consumer_tag: str

    async def cancel(self) -> None:
        await self.queue.cancel(self.consumer_tag)


class Broker:
    """A service's link to RabbitMQ.

    Publishing waits for the broker's confirm of a persistent message: callers answer their own
    clients (SMTP 250, HTTP 202, ack upstream) only after ``publish`` returned.
    """

    def __init__(self, url: str, topology: Topology, *, publish_timeout: float = 10.0) -> None:
        self.url = url
        self.topology = topology
        self.publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumer_channels: list[AbstractChannel] = []
        self._events = EventPublisher(self.publish)
        self._groups = GroupPublisher(self.publish)

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url)
        self._publish_channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self.topology.declare(self._publish_channel)
        self._groups.open()
        self._events.open()
        logger.info("%s connected, topology declared (%s shards)", self.url, self.topology.shards)

    async def close(self) -> None:
        # Events and grouped items still waiting are published first, while the connection
        # is open.
        await self._groups.close(self.publish_timeout)
        await self._events.close(self.publish_timeout)
        for channel in self._consumer_channels:
            if not channel.is_closed:
                await channel.close()
        if self._connection is not None:
            await self._connection.close()
        await self._groups.stop()
        await self._events.stop()

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._connection

    async def publish(
        self,
        routing_key: str,
        message: ProtoMessage,
        *,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
        exchange: str = EXCHANGE,
    ) -> None:
        """Publish a persistent protobuf message and wait for the broker's confirm."""
        if self._publish_channel is None:
            raise BrokerUnavailable("not connected")
        all_headers: dict[str, Any] = {TYPE_HEADER: message.DESCRIPTOR.full_name}
        if headers:
            all_headers.update(headers)
        inject_context(all_headers)
        amqp_message = aio_pika.Message(
            body=message.SerializeToString(),
            content_type="application/x-protobuf",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=priority,
            headers=all_headers,
        )
        try:
            target = (
                self._exchange
                if exchange == EXCHANGE and self._exchange is not None
                else await self._publish_channel.get_exchange(exchange, ensure=False)
            )
            confirmation = await asyncio.wait_for(
                target.publish(amqp_message, routing_key=routing_key, mandatory=True),
                timeout=self.publish_timeout,
            )
        except (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise BrokerUnavailable(f"publish to {routing_key} not confirmed: {exc!r}") from exc
        if confirmation is not None and not isinstance(confirmation, Basic.Ack):
            raise BrokerUnavailable(f"publish to {routing_key} refused: {confirmation!r}")
        PUBLISHED.labels(all_headers[TYPE_HEADER]).inc()

    async def publish_grouped(self, routing_key: str, message: ProtoMessage) -> None:
        """``publish`` for a message that may travel with others to the same routing key (an
        ``AcceptedDelivery``, a ``DeliveryResult``): alone when the key is idle, else in one
        batch with those that arrived while the previous publish was in flight (see
        ``broker/groups.py``). Returns once the broker confirmed the message carrying it;
        raises ``BrokerUnavailable`` like ``publish``."""
        await self._groups.publish(routing_key, message)

    async def publish_event(self, event: Event) -> None:
        """Publish a ``DeliveryEvent`` or ``ErrorClassified`` and wait for the confirm of the
        broker message carrying it: alone when the kind is idle, else with the events that
        arrived while earlier ones were in flight (group commit, see ``broker/events.py``).
        Raises ``BrokerUnavailable`` like ``publish``."""
        await self._events.publish(event)

    async def publish_events(self, events: Iterable[Event]) -> None:
        """``publish_event`` for several events at once (those of one kind travel together);
        returns once all were confirmed, raises ``BrokerUnavailable`` if any was not."""
        await self._events.publish_many(events)

    async def publish_delayed(
        self,
        routing_key: str,
        message: ProtoMessage,
        *,
        not_before: float,
        now: float,
        wait: str = "",
    ) -> int:
        """Park a message until ``not_before`` (epoch seconds); returns the bucket used.

        The message comes back on ``routing_key`` after the bucket's TTL with header
        ``x-postline-not-before``; the consumer re-parks it if that moment is still ahead.
        ``wait`` names why it waits (``retry``, ``prohibited_hours``...): the span that takes
        it up again links to the one that parked it (``telemetry.wait_links``).
        """
        bucket = delay_bucket(not_before - now)
        # A string: AMQP tables carry a Python float as a 32-bit float, which rounds epoch
        # seconds to a multiple of 128.
        headers = {"x-postline-not-before": f"{not_before:.3f}"}
        if wait:
            headers[WAIT_HEADER] = wait
        await self.publish(routing_key, message, headers=headers, exchange=delay_exchange(bucket))
        return bucket

    async def consume(
        self,
        queue_name: str,
        message_type: MessageTypes,
        handler: Handler[Any],
        *,
        prefetch: int = 10,
    ) -> Subscription:
        """Start consuming ``queue_name`` on a channel of its own with the given prefetch."""
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        self._consumer_channels.append(channel)
        queue = await channel.get_queue(queue_name, ensure=False)
        return Subscription(queue, await consume(queue, message_type, handler))

    async def consume_queue(
        self,
        declare: Callable[[AbstractChannel], Awaitable[Any]],
        message_type: MessageTypes,
        handler: Handler[Any],
        *,
        prefetch: int = 10,
    ) -> None:
        """Consume a queue this process declares itself (e.g. an exclusive one)."""
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        self._consumer_channels.append(channel)
        queue = await declare(channel)
        await consume(queue, message_type, handler)
