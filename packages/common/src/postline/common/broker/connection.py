"""One connection per process, a confirmed publish channel, and consumers of typed messages.

The connection is aio-pika's robust one: when RabbitMQ restarts or the connection drops it
reconnects (every ``RECONNECT_SECONDS``), reopens each channel, declares again what was
declared on it and subscribes its consumers again. A consumer's queue is therefore always
taken with a (passive) declaration, which registers it with its channel: a queue object made
without one is not restored, and its consumer would silently stay gone after a reconnect.
Each connection attempt has a time limit (one the broker takes and never answers, while it
stops or starts, is given up and made again), and a heartbeat notices a broker gone without a
word (``connection_options``).

A watchdog checks once a second that the connection is up, the publish channel open and every
consumer subscribed on a live channel: ``problem`` (and ``/readyz``, through it) says what is
missing meanwhile. A publish made while the connection is down waits for it to come back,
within the publish timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelInvalidStateError
from google.protobuf.message import Message as ProtoMessage
from pamqp.commands import Basic
from prometheus_client import Counter

from postline.common.broker.consumer import TYPE_HEADER, Handler, MessageTypes, consume
from postline.common.broker.errors import BrokerUnavailable
from postline.common.broker.events import Event, EventPublisher
from postline.common.broker.groups import Encoded, GroupPublisher
from postline.common.broker.topology import EXCHANGE, Topology, delay_bucket, delay_exchange
from postline.common.redact import redact_url
from postline.common.runtime import within
from postline.common.semconv import METRIC_BROKER_PUBLISHED
from postline.common.telemetry import WAIT_HEADER, inject_context

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=ProtoMessage)

PUBLISHED = Counter(METRIC_BROKER_PUBLISHED, "broker messages published (confirmed)", ["type"])

# aio-pika's default is 5 s; a broker that restarts is back within seconds.
RECONNECT_SECONDS = 2.0
# First connection at start-up: RabbitMQ may still be starting (the waits double up to this).
CONNECT_RETRY_MAX_SECONDS = 10.0
WATCH_SECONDS = 1.0
# Closing a channel or the connection waits this long for the broker at most.
CLOSE_SECONDS = 5.0
# Errors of a connection attempt that is worth repeating.
CONNECT_ERRORS = (aio_pika.exceptions.AMQPError, OSError, TimeoutError)
# One connection attempt (TCP, AMQP handshake, vhost open) may take this long: without a
# limit, an attempt the broker never answers (one made while it was stopping or starting)
# waits for ever, and the process reconnects no more.
CONNECT_SECONDS = 15.0
# A broker gone without closing the connection (its host lost, a network cut) is noticed
# after three missed heartbeats: RabbitMQ's default of 60 s makes that over three minutes.
HEARTBEAT_SECONDS = 20
# While a problem lasts, the watchdog says so again this often.
REMIND_SECONDS = 30.0


def connection_options(url: str) -> dict[str, Any]:
    """The options every connection to RabbitMQ is opened with: a heartbeat the URL may set
    itself (``?heartbeat=``), and a time limit on each attempt."""
    options: dict[str, Any] = {"timeout": CONNECT_SECONDS}
    if "heartbeat" not in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query):
        options["heartbeat"] = HEARTBEAT_SECONDS
    return options


class Subscription:
    """A running consumer. ``cancel()`` asks the broker to deliver no more messages to it;
    messages already delivered stay with their handlers, which still ack them (a graceful
    stop: cancel, let the handlers finish, then close). While it runs, the broker's watchdog
    checks it is subscribed."""

    def __init__(self, broker: Broker, queue: AbstractQueue, consumer_tag: str) -> None:
        self.broker = broker
        self.queue = queue
        self.consumer_tag = consumer_tag

    async def cancel(self) -> None:
        self.broker.unwatch(self)
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
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumer_channels: list[AbstractChannel] = []
        self._events = EventPublisher(self.publish)
        self._groups = GroupPublisher(self.publish)
        self._subscriptions: dict[int, Subscription] = {}
        self._problem: str | None = "not connected yet"
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False

    async def connect(self, *, until: asyncio.Event | None = None) -> bool:
        """Connect and declare the topology. Without ``until`` one attempt is made (its error
        raised); with it, attempts go on (RabbitMQ may be starting too) until one succeeds or
        ``until`` is set. Returns whether it connected."""
        delay = 0.5
        while True:
            try:
                connection = await aio_pika.connect_robust(
                    self.url, reconnect_interval=RECONNECT_SECONDS, **connection_options(self.url)
                )
                break
            except CONNECT_ERRORS as exc:
                if until is None:
                    raise
                logger.warning(
                    "%s: cannot connect (%s); retrying in %.1fs", redact_url(self.url), exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await within(until.wait(), delay)
                if until.is_set():
                    return False
                delay = min(CONNECT_RETRY_MAX_SECONDS, delay * 2)
        self._connection = connection
        self._publish_channel = await connection.channel(publisher_confirms=True)
        self._exchange = await self.topology.declare(self._publish_channel)
        self._groups.open()
        self._events.open()
        self._problem = None
        self._watchdog = asyncio.create_task(self._watch(), name="broker-watchdog")
        logger.info(
            "%s connected, topology declared (%s shards)",
            redact_url(self.url),
            self.topology.shards,
        )
        return True

    async def close(self) -> None:
        if self._watchdog is not None:
            # The flag too, whatever becomes of the cancel: the loop ends on it within one
            # round (a cancel lost by Python 3.11's wait_for once kept it going for ever; its
            # waits use ``within`` now).
            self._closing = True
            self._watchdog.cancel()
            await asyncio.wait({self._watchdog}, timeout=2 * WATCH_SECONDS + CLOSE_SECONDS)
        # Events and grouped items still waiting are published first, while the connection
        # is open.
        await self._groups.close(self.publish_timeout)
        await self._events.close(self.publish_timeout)
        # A broker that does not answer does not keep the process from ending: what was not
        # acked goes back to its queue when the connection drops.
        for channel in self._consumer_channels:
            if not channel.is_closed:
                with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError, TimeoutError):
                    await within(channel.close(), CLOSE_SECONDS)
        if self._connection is not None:
            with contextlib.suppress(TimeoutError):
                await within(self._connection.close(), CLOSE_SECONDS)
        await self._groups.stop()
        await self._events.stop()

    @property
    def connected(self) -> bool:
        """The connection to RabbitMQ is up (not reconnecting)."""
        return self._connection is not None and self._connection.connected.is_set()

    @property
    def problem(self) -> str | None:
        """Why this process cannot publish or consume right now (None: it can)."""
        if self._connection is None:
            return self._problem
        if not self.connected:
            return "connection to RabbitMQ lost; reconnecting"
        return self._problem

    @property
    def ready(self) -> bool:
        return self.problem is None

    def watch(self, subscription: Subscription) -> None:
        self._subscriptions[id(subscription)] = subscription

    def unwatch(self, subscription: Subscription) -> None:
        self._subscriptions.pop(id(subscription), None)

    async def subscribe(
        self,
        queue: AbstractQueue,
        callback: Callable[[AbstractIncomingMessage], Awaitable[Any]],
        *,
        arguments: Mapping[str, Any] | None = None,
    ) -> Subscription:
        """Consume ``queue`` (taken with a declaration, see above) with a raw callback; the
        watchdog checks the subscription until it is cancelled. ``arguments`` go with the
        basic.consume (a stream's ``x-stream-offset``)."""
        tag = await queue.consume(callback, arguments=dict(arguments) if arguments else None)
        return self.track(queue, tag)

    def track(self, queue: AbstractQueue, consumer_tag: str) -> Subscription:
        """Have the watchdog check a consumer started elsewhere (on this connection)."""
        subscription = Subscription(self, queue, consumer_tag)
        self.watch(subscription)
        return subscription

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        was: str | None = None
        since = said = loop.time()
        while not self._closing:
            problem = await self._find_problem()
            self._problem = problem
            now = loop.time()
            if problem != was:
                if problem is not None:
                    logger.warning("RabbitMQ: %s", problem)
                else:
                    logger.info("RabbitMQ: publishing and consuming again")
                was = problem
                since = said = now
            elif problem is not None and now - said >= REMIND_SECONDS:
                logger.warning("RabbitMQ: %s (for %.0f s)", problem, now - since)
                said = now
            await asyncio.sleep(WATCH_SECONDS)

    async def _find_problem(self) -> str | None:
        if not self.connected:
            return "connection to RabbitMQ lost; reconnecting"
        if self._publish_channel is None or self._publish_channel.is_closed:
            return "publish channel closed; reopening"
        for subscription in list(self._subscriptions.values()):
            name = subscription.queue.name
            try:
                channel = await within(
                    subscription.queue.channel.get_underlay_channel(), WATCH_SECONDS
                )
            except (TimeoutError, ChannelInvalidStateError, aio_pika.exceptions.AMQPError):
                return f"{name}: consumer channel closed; reopening"
            consumers = getattr(channel, "consumers", {})  # aiormq's, not in its abstract type
            if channel.is_closed or subscription.consumer_tag not in consumers:
                return f"{name}: not consuming"
        return None

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._connection

    async def publish(
        self,
        routing_key: str,
        message: ProtoMessage | Encoded,
        *,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
        exchange: str = EXCHANGE,
        mandatory: bool = True,
    ) -> None:
        """Publish a persistent protobuf message (or one encoded already: a batch) and wait
        for the broker's confirm.

        A message no queue takes is refused (``BrokerUnavailable``), unless ``mandatory`` is
        False: a broadcast (a suppression change) may have no listener at the moment."""
        channel = self._publish_channel
        if channel is None:
            raise BrokerUnavailable("not connected")
        if isinstance(message, Encoded):
            type_name, body = message.type_name, message.body
        else:
            type_name, body = message.DESCRIPTOR.full_name, message.SerializeToString()
        all_headers: dict[str, Any] = {TYPE_HEADER: type_name}
        if headers:
            all_headers.update(headers)
        inject_context(all_headers)
        amqp_message = aio_pika.Message(
            body=body,
            content_type="application/x-protobuf",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=priority,
            headers=all_headers,
        )
        try:
            # asyncio.timeout, not wait_for: no task of its own for every publish (3.11).
            async with asyncio.timeout(self.publish_timeout):
                confirmation = await self._publish_when_open(
                    channel, exchange, amqp_message, routing_key, mandatory
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

    async def _publish_when_open(
        self,
        channel: AbstractRobustChannel,
        exchange: str,
        message: aio_pika.Message,
        routing_key: str,
        mandatory: bool,
    ) -> Any:
        """Publish once the channel is open; a channel that closed before the message went out
        (the connection dropped) is waited for, since nothing was sent. An error after sending
        is raised: the message may have reached the broker, so it is not sent twice here."""
        while True:
            await channel.ready()  # the connection is up and the channel reopened
            target = (
                self._exchange
                if exchange == EXCHANGE and self._exchange is not None
                else await channel.get_exchange(exchange, ensure=False)
            )
            try:
                return await target.publish(message, routing_key=routing_key, mandatory=mandatory)
            except ChannelInvalidStateError:
                await asyncio.sleep(0.05)  # closed under us: wait for the reopened channel

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` after each reconnection, once every channel was reopened and its
        consumers subscribed again (e.g. to read again what a private queue, gone with the
        old connection, may have missed meanwhile)."""

        async def reconnected(*_: Any) -> None:
            await callback()

        self.connection.reconnect_callbacks.add(reconnected)

    async def publish_event(self, event: Event) -> None:
        """Publish a ``DeliveryEvent`` or ``ErrorClassified`` and wait for the confirm of the
        broker message carrying it: alone when the kind is idle, else with the events that
        arrived while earlier ones were in flight (group commit, see ``broker/events.py``).
        Raises ``BrokerUnavailable`` like ``publish``."""
        await self._events.publish(event)

    async def publish_events(self, events: Iterable[Event], *, linger: float = 0.0) -> None:
        """``publish_event`` for several events at once (those of one kind travel together);
        returns once all were confirmed, raises ``BrokerUnavailable`` if any was not. With
        ``linger`` (seconds) they may wait that long for other events to travel with."""
        await self._events.publish_many(events, linger=linger)

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
        queue = await channel.get_queue(queue_name)  # a passive declaration: see above
        return await self.subscribe(queue, consume(queue, message_type, handler))

    async def consume_queue(
        self,
        declare: Callable[[AbstractChannel], Awaitable[Any]],
        message_type: MessageTypes,
        handler: Handler[Any],
        *,
        prefetch: int = 10,
        arguments: Mapping[str, Any] | None = None,
    ) -> Subscription:
        """Consume a queue this process declares itself (e.g. an exclusive one, or a stream
        read from the offset ``arguments`` give)."""
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        self._consumer_channels.append(channel)
        queue = await declare(channel)
        return await self.subscribe(
            queue, consume(queue, message_type, handler), arguments=arguments
        )
