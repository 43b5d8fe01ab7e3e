"""Consuming ``reports.events`` in batches: many events, one insert per table, one ack.

The common consumer acks each message after its handler; ClickHouse wants few large inserts.
So this consumer holds messages unacked until a batch is full (``max_events``) or its first
message has waited ``max_wait`` seconds, writes the batch, and only then acks it (one ack with
``multiple``: batches are taken in delivery order, so every earlier delivery is settled).

When the write fails (ClickHouse down, a table missing...), the batch is retried in place with
a growing pause: the same events, so the same deduplication token, and nothing is counted
twice. Past ``hold`` seconds of failures the batch and everything buffered behind it are
nacked back to the queue, where they wait (visible as queue depth) while the consumer keeps
backing off. A message that cannot be decoded is dead-lettered, alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import AMQPError
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from opentelemetry import propagate, trace
from prometheus_client import Counter, Histogram

from postline.common.broker import Broker
from postline.common.broker.consumer import MessageTypes, PoisonMessage, decode
from postline.common.semconv import (
    BATCH_SIZE,
    METRIC_INGEST_BATCH_EVENTS,
    METRIC_INGEST_FAILURES,
    METRIC_INGEST_SECONDS,
    SPAN_INGEST,
)
from postline.common.telemetry import tracer

logger = logging.getLogger(__name__)

BATCH_EVENTS = Histogram(
    METRIC_INGEST_BATCH_EVENTS,
    "events per ingest batch",
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
)
WRITE_SECONDS = Histogram(METRIC_INGEST_SECONDS, "seconds to write one ingest batch")
FAILURES = Counter(METRIC_INGEST_FAILURES, "failed ingest batch writes")

# A span links to at most this many of its batch's traces (the SDK's default link limit).
MAX_LINKS = 128

Write = Callable[[Sequence[ProtoMessage]], Awaitable[None]]
Check = Callable[[ProtoMessage], None]


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.maximum, self.first * self.factor ** max(0, failures - 1)))


class BatchConsumer:
    def __init__(
        self,
        broker: Broker,
        queue_name: str,
        types: MessageTypes,
        write: Write,
        *,
        check: Check | None = None,
        max_events: int = 20_000,
        max_wait: float = 1.0,
        hold: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.broker = broker
        self.queue_name = queue_name
        self.types = types
        self.write = write
        self.check = check
        self.max_events = max_events
        self.max_wait = max_wait
        self.hold = hold
        self.backoff = backoff or Backoff()
        self.failures = 0  # consecutive failed writes (0: healthy)
        self._pending: list[AbstractIncomingMessage] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._stopping = False
        self._stop = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self.failures == 0

    async def start(self) -> None:
        self._channel = await self.broker.connection.channel()
        # Twice a batch in flight: the next batch fills while one is being written.
        await self._channel.set_qos(prefetch_count=2 * self.max_events)
        self._queue = await self._channel.get_queue(self.queue_name, ensure=False)
        await self._consume()
        self._task = asyncio.create_task(self._run(), name=f"batch-consumer:{self.queue_name}")

    async def stop(self) -> None:
        """Stop taking messages, write what is buffered (one last try), close the channel."""
        self._stopping = True
        self._stop.set()
        await self._cancel()
        self._arrived.set()
        self._full.set()
        if self._task is not None:
            await self._task
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _consume(self) -> None:
        if self._queue is not None and self._tag is None:
            self._tag = await self._queue.consume(self._on_message)

    async def _cancel(self) -> None:
        """Ask the broker for no more deliveries (those held stay ours until settled)."""
        if self._queue is not None and self._tag is not None:
            tag, self._tag = self._tag, None
            with contextlib.suppress(AMQPError, RuntimeError, ConnectionError):
                await self._queue.cancel(tag)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._pending.append(message)
        self._arrived.set()
        if len(self._pending) >= self.max_events:
            self._full.set()

    async def _run(self) -> None:
        while True:
            if self._stopping and not self._pending:
                return
            await self._arrived.wait()
            if not self._pending:
                self._arrived.clear()
                continue
            if not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait)
            batch = self._pending[: self.max_events]
            del self._pending[: len(batch)]
            if len(self._pending) < self.max_events:
                self._full.clear()
            if not self._pending:
                self._arrived.clear()
            written = await self._flush(batch)
            if not written:
                if self._stopping:
                    return
                # The events wait in the queue (its depth shows the backlog) until we retry.
                await self._pause(self.backoff.delay(self.failures))
                if not self._stopping:
                    await self._consume()

    async def _flush(self, batch: list[AbstractIncomingMessage]) -> bool:
        """Write a batch and settle it; False if it went back to the queue."""
        events: list[ProtoMessage] = []
        for message in batch:
            try:
                event = decode(message.body, dict(message.headers or {}), self.types)
                if self.check is not None:
                    self.check(event)
            except (DecodeError, PoisonMessage) as exc:
                logger.error("%s: undecodable event dead-lettered: %s", self.queue_name, exc)
                await self._settle(message.reject(requeue=False))
                continue
            events.append(event)
        if not events:
            return True
        first_failure = None
        span = tracer(__name__).start_as_current_span(SPAN_INGEST, links=self._links(batch))
        with span as current:
            current.set_attribute(BATCH_SIZE, len(events))
            while True:
                started = time.monotonic()
                try:
                    await self.write(events)
                except Exception:
                    FAILURES.inc()
                    self.failures += 1
                    now = time.monotonic()
                    first_failure = first_failure or now
                    if self._stopping or now - first_failure >= self.hold:
                        logger.exception(
                            "%s: write of %d events failed; they go back to the queue",
                            self.queue_name,
                            len(events),
                        )
                        await self._give_back(batch)
                        return False
                    delay = self.backoff.delay(self.failures)
                    logger.warning(
                        "%s: write of %d events failed (%d in a row), retrying in %.1fs",
                        self.queue_name,
                        len(events),
                        self.failures,
                        delay,
                        exc_info=True,
                    )
                    await self._pause(delay)
                    continue
                WRITE_SECONDS.observe(time.monotonic() - started)
                BATCH_EVENTS.observe(len(events))
                if self.failures:
                    logger.info("%s: writes recovered", self.queue_name)
                self.failures = 0
                await self._settle(batch[-1].ack(multiple=True))
                return True

    async def _give_back(self, batch: list[AbstractIncomingMessage]) -> None:
        """Return the batch and everything buffered behind it to the queue, and take no more
        until the next try."""
        await self._cancel()
        held = [*batch, *self._pending]
        self._pending.clear()
        self._full.clear()
        await self._settle(held[-1].nack(multiple=True, requeue=True))

    async def _settle(self, settling: Awaitable[None]) -> None:
        # After a connection loss the broker has already requeued these (it redelivers them to
        # the new channel); acking them on the dead channel fails and must not stop the loop.
        try:
            await settling
        except (AMQPError, RuntimeError, ConnectionError) as exc:
            logger.warning("%s: could not settle messages: %r", self.queue_name, exc)

    def _links(self, batch: list[AbstractIncomingMessage]) -> list[trace.Link]:
        """Links from the ingest span to the traces of (the first) events of the batch."""
        links = []
        for message in batch[:MAX_LINKS]:
            context = propagate.extract(dict(message.headers or {}))
            span_context = trace.get_current_span(context).get_span_context()
            if span_context.is_valid:
                links.append(trace.Link(span_context))
        return links

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
