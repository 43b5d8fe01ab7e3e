"""Consuming ``reports.events`` in batches: many events, one insert per kind, one ack.

The common consumer acks each message after its handler; ClickHouse wants few large inserts.
So this consumer keeps messages unacked until a batch is full (``max_events`` messages or
``max_bytes`` of bodies) or its first message has waited ``max_wait`` seconds, writes the
batch, and only then acks it (one ack with ``multiple``: batches are taken in delivery order,
so every earlier delivery is settled).

A message may carry one event or a batch of them (a busy producer's events travel together),
so the prefetch follows the size of what arrives: it starts small enough for batch messages
and grows to twice ``max_events`` when messages turn out to be single events, keeping what is
kept in memory near twice ``max_bytes``.

When the write fails (ClickHouse down, a table missing...), the batch is retried in place with
a growing pause: the same events, so the same deduplication token, and nothing is counted
twice. Past ``retry_for`` seconds of failures the batch and everything buffered behind it are
nacked back to the queue, where they wait (visible as queue depth) while the consumer keeps
backing off. A message no row can be made of is dead-lettered, alone, and the rest written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from opentelemetry import trace
from prometheus_client import Counter, Histogram

from postline.common.broker import Broker
from postline.common.broker.connection import Subscription
from postline.common.broker.consumer import message_type
from postline.common.runtime import within
from postline.common.semconv import (
    BATCH_SIZE,
    METRIC_INGEST_BATCH_EVENTS,
    METRIC_INGEST_FAILURES,
    METRIC_INGEST_SECONDS,
    SPAN_INGEST,
    SPAN_REPORT_INSERT,
)
from postline.common.telemetry import sampled_parents, tracer
from postline.reports.ingest import PoisonEvents, Raw

logger = logging.getLogger(__name__)

BATCH_EVENTS = Histogram(
    METRIC_INGEST_BATCH_EVENTS,
    "events per ingest batch",
    buckets=(1, 10, 100, 1000, 5000, 10000, 20000, 50000, 100000),
)
WRITE_SECONDS = Histogram(METRIC_INGEST_SECONDS, "seconds to write one ingest batch")
FAILURES = Counter(METRIC_INGEST_FAILURES, "failed ingest batch writes")

# Writes a batch of messages, returns how many events they carried; raises PoisonEvents for
# messages that can never be written (they are dead-lettered and the rest written).
Write = Callable[[Sequence[Raw]], Awaitable[int]]

# Subscribing again while RabbitMQ is away is tried this often.
RESUBSCRIBE_SECONDS = 1.0
# Bodies assumed at most this large until messages have been seen (sizes the first prefetch).
LARGEST_MESSAGE = 256 * 1024


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.maximum, self.first * self.factor ** max(0, failures - 1)))


def _channel_open(message: AbstractIncomingMessage) -> bool:
    try:
        return not message.channel.is_closed
    except ChannelInvalidStateError:  # aio-pika raises for a closed one
        return False


class BatchConsumer:
    def __init__(
        self,
        broker: Broker,
        queue_name: str,
        write: Write,
        *,
        max_events: int = 20_000,
        max_bytes: int = 16 * 1024 * 1024,
        max_wait: float = 1.0,
        retry_for: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.broker = broker
        self.queue_name = queue_name
        self.write = write
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_wait = max_wait
        self.retry_for = retry_for
        self.backoff = backoff or Backoff()
        self.failures = 0  # consecutive failed writes (0: healthy)
        self.written = 0  # events written since start
        self._pending: list[AbstractIncomingMessage] = []
        self._pending_bytes = 0
        self.prefetch = self._prefetch_for(LARGEST_MESSAGE)
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._stopping = False
        self._stop = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self.failures == 0

    def problem(self) -> str | None:
        """Why events are not being written now (readiness); None while writes succeed."""
        if self._task is not None and self._task.done() and not self._stopping:
            return f"the consumer of {self.queue_name} stopped (see the log)"
        if self.failures:
            return (
                f"ClickHouse writes failing ({self.failures} in a row); "
                f"events wait in {self.queue_name}"
            )
        return None

    async def start(self) -> None:
        self._channel = await self.broker.connection.channel()
        # Twice a batch in flight: the next batch fills while one is being written.
        await self._channel.set_qos(prefetch_count=self.prefetch)
        # A declaration registers the queue with the channel: after a reconnect the channel
        # subscribes again by itself (see postline.common.broker.connection).
        self._queue = await self._channel.get_queue(self.queue_name)
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
        if self._queue is not None and self._subscription is None:
            self._subscription = await self.broker.subscribe(self._queue, self._on_message)

    async def _subscribe_again(self) -> None:
        """Consume again, with the current prefetch. While RabbitMQ is away (the channel
        closed under us) try again every ``RESUBSCRIBE_SECONDS``: the channel comes back with
        the connection, and a consumer that gave up here would never take a message again."""
        while not self._stopping and self._channel is not None:
            try:
                await self._channel.set_qos(prefetch_count=self.prefetch)
                await self._consume()
                return
            except (AMQPError, RuntimeError, ConnectionError) as exc:
                logger.warning(
                    "%s: cannot consume again yet (%r); trying again in %.0fs",
                    self.queue_name,
                    exc,
                    RESUBSCRIBE_SECONDS,
                )
                await self._pause(RESUBSCRIBE_SECONDS)

    async def _cancel(self) -> None:
        """Ask the broker for no more deliveries (those delivered stay ours until settled)."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            with contextlib.suppress(AMQPError, RuntimeError, ConnectionError):
                await subscription.cancel()

    def _prefetch_for(self, message_bytes: float) -> int:
        """Messages kept unacked: two batches, by count or by bytes, whichever is less."""
        by_bytes = int(2 * self.max_bytes / max(message_bytes, 1.0))
        return max(16, min(2 * self.max_events, by_bytes))

    async def _adapt_prefetch(self, batch: Sequence[AbstractIncomingMessage]) -> None:
        """Follow the size of the messages arriving (a new limit needs a new consumer)."""
        size = sum(len(m.body) for m in batch) / len(batch)
        wanted = self._prefetch_for(size)
        if self.prefetch / 2 <= wanted <= self.prefetch * 2 or self._channel is None:
            return
        logger.info("%s: prefetch %d -> %d", self.queue_name, self.prefetch, wanted)
        self.prefetch = wanted
        await self._cancel()
        await self._subscribe_again()

    def _is_full(self) -> bool:
        # Holding all the prefetch allows, nothing more comes until a batch is acked.
        return (
            len(self._pending) >= min(self.max_events, self.prefetch)
            or self._pending_bytes >= self.max_bytes
        )

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._pending.append(message)
        self._pending_bytes += len(message.body)
        self._arrived.set()
        if self._is_full():
            self._full.set()

    def _take(self) -> list[AbstractIncomingMessage]:
        """The next batch: up to max_events messages and max_bytes (at least one message)."""
        count = size = 0
        for message in self._pending[: self.max_events]:
            if count and size + len(message.body) > self.max_bytes:
                break
            count += 1
            size += len(message.body)
        batch = self._pending[:count]
        del self._pending[:count]
        self._pending_bytes -= size
        return batch

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
                    await within(self._full.wait(), self.max_wait)
            batch = self._take()
            if not self._is_full():
                self._full.clear()
            if not self._pending:
                self._arrived.clear()
            # Messages of a channel that closed (the connection dropped) are the broker's
            # again: it redelivers them, so writing them now would only write them twice.
            batch = [m for m in batch if _channel_open(m)]
            if not batch:
                continue
            written = await self._flush(batch)
            if written and not self._stopping:
                await self._adapt_prefetch(batch)
            if not written:
                if self._stopping:
                    return
                # The events wait in the queue (its depth shows the backlog) until we retry.
                await self._pause(self.backoff.delay(self.failures))
                await self._subscribe_again()

    async def _flush(self, batch: list[AbstractIncomingMessage]) -> bool:
        """Write a batch and settle it; False if it went back to the queue."""
        raws = [(message_type(m.headers or {}), m.body) for m in batch]
        first_failure = None
        # The batch is a trace of its own; each event's trace gets its own insert span
        # (``_record_inserts``), which is how a delivery's timeline shows the insert.
        span = tracer(__name__).start_as_current_span(SPAN_INGEST)
        with span as current:
            while batch:
                started = time.monotonic()
                started_ns = time.time_ns()
                try:
                    events = await self.write(raws)
                except PoisonEvents as poison:
                    batch, raws = await self._dead_letter(batch, raws, poison)
                    continue
                except Exception:
                    FAILURES.inc()
                    self.failures += 1
                    now = time.monotonic()
                    first_failure = first_failure or now
                    if self._stopping or now - first_failure >= self.retry_for:
                        logger.exception(
                            "%s: write of %d messages failed; they go back to the queue",
                            self.queue_name,
                            len(batch),
                        )
                        await self._give_back(batch)
                        return False
                    delay = self.backoff.delay(self.failures)
                    logger.warning(
                        "%s: write of %d messages failed (%d in a row), retrying in %.1fs",
                        self.queue_name,
                        len(batch),
                        self.failures,
                        delay,
                        exc_info=True,
                    )
                    await self._pause(delay)
                    continue
                current.set_attribute(BATCH_SIZE, events)
                _record_inserts(batch, started_ns, time.time_ns(), events)
                WRITE_SECONDS.observe(time.monotonic() - started)
                BATCH_EVENTS.observe(events)
                self.written += events
                if self.failures:
                    logger.info("%s: writes recovered", self.queue_name)
                self.failures = 0
                await self._settle(batch[-1].ack(multiple=True))
                return True
        return True

    async def _dead_letter(
        self, batch: list[AbstractIncomingMessage], raws: list[Raw], poison: PoisonEvents
    ) -> tuple[list[AbstractIncomingMessage], list[Raw]]:
        """Reject the refused messages to the dead-letter queue; the rest of the batch."""
        for index, reason in sorted(poison.reasons.items()):
            logger.error("%s: event message dead-lettered: %s", self.queue_name, reason)
            await self._settle(batch[index].reject(requeue=False))
        keep = [i for i in range(len(batch)) if i not in poison.reasons]
        return [batch[i] for i in keep], [raws[i] for i in keep]

    async def _give_back(self, batch: list[AbstractIncomingMessage]) -> None:
        """Return the batch and everything buffered behind it to the queue, and take no more
        until the next try."""
        await self._cancel()
        returned = [*batch, *self._pending]
        self._pending.clear()
        self._pending_bytes = 0
        self._full.clear()
        await self._settle(returned[-1].nack(multiple=True, requeue=True))

    async def _settle(self, settling: Awaitable[None]) -> None:
        # After a connection loss the broker has already requeued these (it redelivers them to
        # the new channel); acking them on the dead channel fails and must not stop the loop.
        try:
            await settling
        except (AMQPError, RuntimeError, ConnectionError) as exc:
            logger.warning("%s: could not settle messages: %r", self.queue_name, exc)

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless asked to stop."""
        with contextlib.suppress(TimeoutError):
            await within(self._stop.wait(), seconds)


def _record_inserts(
    batch: Sequence[AbstractIncomingMessage], started_ns: int, ended_ns: int, events: int
) -> None:
    """The report insert in each event's own trace: a span per sampled message, child of
    the context it was published in, timed as the batch's write. Nothing when no trace is
    sampled (tracing off), so the ingest path stays as lean as it was."""
    ingest_tracer = tracer(__name__)
    for message in batch:
        for parent in sampled_parents(message.headers or {}):
            span = ingest_tracer.start_span(
                SPAN_REPORT_INSERT,
                context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
                start_time=started_ns,
                attributes={BATCH_SIZE: events},
            )
            span.end(end_time=ended_ns)
