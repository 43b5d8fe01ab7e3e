"""One endpoint's queue, POSTed: batches, signatures, retries, backoff.

The endpoint's queue (``webhooks.<endpoint id>``, single active consumer: one process POSTs
to an endpoint at a time) holds ``WebhookBatch`` messages. Fresh ones from the fan-out are
merged into one POST of up to ``batch_size`` events, sent once that many are there or the
first has waited ``batch_wait``; an inbound mail, or a batch that was tried before, goes
alone, with the same ``webhook-id`` and body at every attempt (a new ``webhook-timestamp``
and signature each time, as Standard Webhooks says).

A 2xx answer acks the messages. Anything else, or no answer within ``timeout``, and the
batch is published again through the delay queues (``topology.py``) with one more attempt
counted, to come back after the retry delay (``retry_first``, doubling up to ``retry_max``),
and only then are the originals acked: RabbitMQ holds it all along, so a process that dies
loses nothing (its unacked messages go back to the queue). A batch still failing
``retry_for`` after it was made (24 h) is given up: dead-lettered to ``postline.dead`` for a
human, and recorded as ``expired``.

After a failed POST the endpoint is left alone for the retry delay of its consecutive
failures (a dead endpoint gets one request per ``retry_max`` at most, then everything as
soon as one succeeds); messages kept unacked meanwhile are handed back and redelivered, so
none is kept longer than RabbitMQ's consumer timeout. Each endpoint has its own channel,
consumer and pace: a slow or dead one holds up nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import httpx
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import AMQPError
from google.protobuf.message import DecodeError

from postline.common.broker import Broker, BrokerUnavailable
from postline.common.ids import new_id
from postline.common.runtime import within
from postline.common.semconv import ATTEMPT, SPAN_WEBHOOK_POST
from postline.common.telemetry import tracer
from postline.common.timeutil import from_timestamp, to_timestamp
from postline.common.webhooks import Endpoint, EndpointKind, SignatureKey
from postline.reports.webhooks.attempts import Attempt, AttemptLog, PostOutcome
from postline.reports.webhooks.events import events_body
from postline.reports.webhooks.inbound import inbound_body
from postline.v1 import webhooks_pb2

logger = logging.getLogger(__name__)

USER_AGENT = "Postline-Webhooks/1"
NOT_BEFORE = "x-postline-not-before"
# A retry that comes back this early (delay buckets are coarse) is sent rather than re-parked.
EARLY_SECONDS = 0.5


@dataclass(frozen=True)
class PostSettings:
    batch_size: int = 100  # events per POST
    batch_wait: float = 1.0  # seconds a batch waits to fill
    timeout: float = 10.0  # seconds for an answer
    retry_first: float = 5.0  # the first retry delay; each next one doubles...
    retry_max: float = 600.0  # ...up to this (below RabbitMQ's 30 min consumer timeout)
    retry_for: float = 86_400.0  # a batch is given up this long after it was made

    def retry_delay(self, failures: int) -> float:
        """The wait after ``failures`` failed attempts, with a little jitter (endpoints that
        failed together do not come back in lockstep)."""
        delay = min(self.retry_max, self.retry_first * 2 ** max(0, failures - 1))
        return delay * random.uniform(0.9, 1.0)


@dataclass
class _Unacked:
    message: AbstractIncomingMessage
    batch: webhooks_pb2.WebhookBatch
    arrived: float  # monotonic

    @property
    def fresh(self) -> bool:
        return not self.batch.webhook_id and not self.batch.HasField("inbound")

    @property
    def not_before(self) -> float | None:
        value = (self.message.headers or {}).get(NOT_BEFORE)
        if isinstance(value, bytes):
            value = value.decode()
        return float(value) if isinstance(value, str | int | float) else None


class EndpointPoster:
    def __init__(
        self,
        endpoint: Endpoint,
        key: SignatureKey,
        broker: Broker,
        client: httpx.AsyncClient,
        log: AttemptLog,
        settings: PostSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.key = key
        self.broker = broker
        self.client = client
        self.log = log
        self.settings = settings
        self.clock = clock
        self.failures = 0  # consecutive failed POSTs
        self.delivered = 0  # batches delivered since start
        # An inbound mail may be megabytes: keep two; events: two POSTs' worth.
        inbound = endpoint.kind is EndpointKind.INBOUND
        self.prefetch = 2 if inbound else 2 * settings.batch_size
        self._unacked: deque[_Unacked] = deque()
        self._arrived = asyncio.Event()
        self._stop = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._channel = await self.broker.connection.channel()
        await self._channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await self.broker.topology.declare_webhook_queue(
            self._channel, self.endpoint.id
        )
        self._tag = await self._queue.consume(self._on_message)
        self._task = asyncio.create_task(self._run(), name=f"webhook:{self.endpoint.id}")

    async def stop(self) -> None:
        """Take nothing more; let a POST in flight end (up to its timeout), close the channel
        (the broker requeues whatever is unacked)."""
        self._stop.set()
        self._arrived.set()
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(AMQPError, RuntimeError, ConnectionError):
                await self._queue.cancel(self._tag)
        if self._task is not None:
            try:
                await within(self._task, self.settings.timeout + 1)
            except TimeoutError:
                pass  # cancelled at the deadline; its messages go back to the queue
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(AMQPError, RuntimeError, ConnectionError):
                await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            batch = webhooks_pb2.WebhookBatch.FromString(message.body)
        except DecodeError as exc:
            logger.error("%s: undecodable message dead-lettered: %s", self.endpoint.queue, exc)
            await _settle(message.reject(requeue=False))
            return
        self._unacked.append(_Unacked(message, batch, time.monotonic()))
        self._arrived.set()

    async def _run(self) -> None:
        while not self._stop.is_set():
            if not self._unacked:
                # Nothing unacked: wait for a delivery (no await between the test and the clear,
                # so none can slip in unnoticed).
                self._arrived.clear()
                await self._arrived.wait()
                continue
            first = self._unacked[0]
            if not first.fresh:
                self._unacked.popleft()
                not_before = first.not_before
                if not_before is not None and not_before - self.clock() > EARLY_SECONDS:
                    await self._repark(first, not_before)
                    continue
                taken = [first]
            else:
                await self._fill(first)
                taken = self._take_fresh()
            try:
                delivered = await self._deliver(taken)
            except Exception:
                # Not the endpoint's doing (a bug, the broker): the batch goes back to the
                # queue and is tried again after the backoff, like a failed POST.
                logger.exception("%s: webhook batch not handled; requeued", self.endpoint.label)
                for unacked in taken:
                    await _settle(unacked.message.nack(requeue=True))
                self.failures += 1
                delivered = False
            if not delivered:
                await self._back_off()

    async def _fill(self, first: _Unacked) -> None:
        """Wait until a POST's worth of fresh events is here or the first waited enough."""
        deadline = first.arrived + self.settings.batch_wait
        while self._fresh_events() < self.settings.batch_size and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await within(self._arrived.wait(), left)

    def _fresh_events(self) -> int:
        count = 0
        for unacked in self._unacked:
            if not unacked.fresh:
                break
            count += len(unacked.batch.events)
        return count

    def _take_fresh(self) -> list[_Unacked]:
        taken: list[_Unacked] = []
        events = 0
        while self._unacked and self._unacked[0].fresh:
            size = len(self._unacked[0].batch.events)
            if taken and events + size > self.settings.batch_size:
                break
            taken.append(self._unacked.popleft())
            events += size
        return taken

    async def _deliver(self, taken: list[_Unacked]) -> bool:
        """POST what was taken and settle it; False if the endpoint failed."""
        first = taken[0].batch
        webhook_id = first.webhook_id or f"msg_{new_id()}"
        attempt = first.attempts + 1
        created = min(from_timestamp(h.batch.created) for h in taken)
        if first.HasField("inbound"):
            body = inbound_body(first.inbound, raw=self.endpoint.raw)
            types: tuple[str, ...] = ("inbound",)
            events: list[webhooks_pb2.WebhookEvent] = []
        else:
            events = [e for h in taken for e in h.batch.events]
            body = events_body(to_timestamp(created), events)
            types = tuple(e.type for e in events)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        now = self.clock()
        with tracer(__name__).start_as_current_span(SPAN_WEBHOOK_POST) as span:
            span.set_attribute(ATTEMPT, attempt)
            outcome, status, error, seconds = await self._post(webhook_id, int(now), data)
        record = Attempt(self.endpoint, now, webhook_id, attempt, types, outcome, status, seconds)
        if outcome is PostOutcome.DELIVERED:
            for unacked in taken:
                await _settle(unacked.message.ack())
            self.log.record(record)
            if self.failures:
                logger.info("%s: answering again", self.endpoint.label)
            self.failures = 0
            self.delivered += 1
            return True
        self.failures += 1
        if now - created >= self.settings.retry_for:
            logger.error(
                "%s: webhook %s given up after %d attempts (%s); dead-lettered",
                self.endpoint.label,
                webhook_id,
                attempt,
                error,
            )
            for unacked in taken:
                await _settle(unacked.message.reject(requeue=False))
            self.log.record(replace(record, error=error))
            self.log.record(replace(record, outcome=PostOutcome.EXPIRED, error=error))
            return False
        retry = webhooks_pb2.WebhookBatch(
            webhook_id=webhook_id, attempts=attempt, created=to_timestamp(created), events=events
        )
        if first.HasField("inbound"):
            retry.inbound.CopyFrom(first.inbound)
        next_at = now + self.settings.retry_delay(attempt)
        try:
            await self.broker.publish_delayed(
                self.endpoint.routing_key, retry, not_before=next_at, now=now
            )
        except BrokerUnavailable as exc:
            logger.warning("%s: retry of %s not parked (%s)", self.endpoint.label, webhook_id, exc)
            for unacked in taken:
                await _settle(unacked.message.nack(requeue=True))
            self.log.record(replace(record, error=error))
            return False
        for unacked in taken:
            await _settle(unacked.message.ack())
        logger.warning(
            "%s: webhook %s attempt %d failed (%s); next try in %.0fs",
            self.endpoint.label,
            webhook_id,
            attempt,
            error,
            next_at - now,
        )
        self.log.record(replace(record, error=error, next_attempt_at=next_at))
        return False

    async def _post(
        self, webhook_id: str, timestamp: int, data: bytes
    ) -> tuple[PostOutcome, int, str, float]:
        headers = {
            **self.key.headers(webhook_id, timestamp, data),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        started = time.monotonic()
        try:
            response = await self.client.post(
                self.endpoint.url, content=data, headers=headers, timeout=self.settings.timeout
            )
        except httpx.TimeoutException:
            return PostOutcome.TIMEOUT, 0, "no answer in time", time.monotonic() - started
        except (httpx.HTTPError, OSError) as exc:
            return PostOutcome.UNREACHABLE, 0, repr(exc), time.monotonic() - started
        seconds = time.monotonic() - started
        if 200 <= response.status_code < 300:
            return PostOutcome.DELIVERED, response.status_code, "", seconds
        text = response.text[:200].strip()
        return (
            PostOutcome.REJECTED,
            response.status_code,
            f"HTTP {response.status_code} {text}",
            seconds,
        )

    async def _repark(self, unacked: _Unacked, not_before: float) -> None:
        """A retry back before its time (long waits hop through the largest delay bucket)."""
        try:
            await self.broker.publish_delayed(
                self.endpoint.routing_key, unacked.batch, not_before=not_before, now=self.clock()
            )
        except BrokerUnavailable:
            await _settle(unacked.message.nack(requeue=True))
            await self._back_off()
            return
        await _settle(unacked.message.ack())

    async def _back_off(self) -> None:
        """Leave the endpoint alone for a while. What is kept unacked goes back to the queue
        first and is delivered again (a fresh delivery: none is kept past RabbitMQ's consumer
        timeout)."""
        returned = list(self._unacked)
        self._unacked.clear()
        self._arrived.clear()
        for item in returned:
            await _settle(item.message.nack(requeue=True))
        delay = self.settings.retry_delay(self.failures)
        with contextlib.suppress(TimeoutError):
            await within(self._stop.wait(), delay)


async def _settle(settling: Awaitable[None]) -> None:
    # After a connection loss the broker has requeued these already; settling them on the dead
    # channel fails and must not stop the endpoint.
    try:
        await settling
    except (AMQPError, RuntimeError, ConnectionError) as exc:
        logger.warning("could not settle a webhook message: %r", exc)
