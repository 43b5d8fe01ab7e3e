"""The sender's handler: a task in, an attempt, its result out; the task is acked (by the
consumer, when the handler returns) only after the result's publish was confirmed.

Tasks granted together come as one broker message (a ``DeliveryTasks``, the scheduler's
``task_lanes.py``); a lone task comes as itself. The consumer runs each task of a batch at
once (at most ``concurrency`` deliveries in this sender: a batch counts as one message in the
prefetch) and acks the message once every result was confirmed. If one of them could not be
(the broker is gone), the whole message comes back: a task of it whose result this sender
had confirmed already is not delivered again (``Delivered``); one delivered by a sender that
died is, as a lone task was.

A sender that dies mid-delivery (``kill -9``, a lost node) never acked its tasks, so RabbitMQ
hands them to another sender: nothing is lost, and the destination may get the message twice,
which is SMTP's norm (RFC 5321 §6.1 prefers a duplicate to a loss). A sender told to stop
(SIGTERM) stops taking tasks and lets those in flight finish: see :meth:`Sender.drain`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from postline.common.broker import Broker
from postline.common.broker.connection import BrokerUnavailable
from postline.common.broker.consumer import MessageMeta
from postline.common.broker.topology import result_key
from postline.common.semconv import (
    ATTEMPT,
    CONNECTION_REUSED,
    DELIVERY_ID,
    DNS_MS,
    ENHANCED_STATUS,
    EVENT_CONNECTED,
    EVENT_MX_LOOKUP,
    EVENT_REPLY,
    METRIC_ATTEMPT_SECONDS,
    METRIC_ATTEMPTS,
    METRIC_IN_FLIGHT,
    MX_ADDRESS,
    MX_HOST,
    OUTCOME,
    RECIPIENT_DOMAIN,
    REPLY_CODE,
    REPLY_TEXT,
    SERVER,
    SOURCE_IP,
    SPAN_ATTEMPT,
    STAGE,
    TLS,
    TLS_CIPHER,
    TLS_VERIFIED,
    TLS_VERSION,
)
from postline.common.telemetry import tracer
from postline.sender.attempt import Deliverer
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)
_tracer = tracer(__name__)

OUTCOME_KEYS = {
    delivery_pb2.OUTCOME_SUCCEEDED: "succeeded",
    delivery_pb2.OUTCOME_DEFERRED: "deferred",
    delivery_pb2.OUTCOME_FAILED: "failed",
}
PUBLISH_TRIES = 3
# Attempts whose result this sender confirmed, remembered for a redelivered batch.
DELIVERED_MEMORY = 10_000

ATTEMPTS = Counter(METRIC_ATTEMPTS, "delivery attempts", ["outcome"])
ATTEMPT_SECONDS = Histogram(METRIC_ATTEMPT_SECONDS, "duration of a delivery attempt")
IN_FLIGHT = Gauge(METRIC_IN_FLIGHT, "deliveries in progress")
# Each outcome's counter looked up once, not per attempt.
_ATTEMPTS_BY_OUTCOME = {outcome: ATTEMPTS.labels(key) for outcome, key in OUTCOME_KEYS.items()}


class Delivered:
    """The attempts (delivery, attempt, grant) whose result this sender confirmed: a batch
    that comes back (one of its results could not be confirmed, or the channel closed before
    the ack) is not delivered twice by the same sender."""

    def __init__(self, memory: int = DELIVERED_MEMORY) -> None:
        self.memory = memory
        self._done: OrderedDict[tuple[str, int, str], None] = OrderedDict()

    @staticmethod
    def _key(task: delivery_pb2.DeliveryTask) -> tuple[str, int, str]:
        return task.delivery.delivery_id, task.attempt, task.grant_id

    def add(self, task: delivery_pb2.DeliveryTask) -> None:
        self._done[self._key(task)] = None
        if len(self._done) > self.memory:
            self._done.popitem(last=False)

    def __contains__(self, task: delivery_pb2.DeliveryTask) -> bool:
        return self._key(task) in self._done


class Slots:
    """At most ``size`` deliveries at once; a task waiting for a slot (a batch brought more
    than are free) gets one highest priority first, as ``sender.tasks`` would have given it,
    and first come first served within a priority."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (-priority, next(self._seq), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot as it was cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1


class Sender:
    def __init__(self, broker: Broker, deliverer: Deliverer, concurrency: int = 1000) -> None:
        self.broker = broker
        self.deliverer = deliverer
        # The consumer tasks running a delivery: each acks its message after we return, so
        # waiting for the task (not just the handler) waits for the ack too.
        self._in_flight: set[asyncio.Task[object]] = set()
        # Deliveries at once: the prefetch counts broker messages, a batch brings several.
        self._slots = Slots(concurrency)
        self.delivered = Delivered()

    def on_task(self, task: delivery_pb2.DeliveryTask, meta: MessageMeta) -> Awaitable[None]:
        # Not a coroutine function: this part runs in the consumer's task, the one that acks
        # the broker message (a batch's tasks each run in a task of their own, made after).
        current = asyncio.current_task()
        if current is not None and current not in self._in_flight:
            self._in_flight.add(current)
            current.add_done_callback(self._in_flight.discard)
        return self._run(task, meta)

    async def _run(self, task: delivery_pb2.DeliveryTask, meta: MessageMeta) -> None:
        if meta.redelivered and task in self.delivered:
            logger.info(
                "%s attempt %d: delivered by this sender already, its result confirmed; "
                "not delivered again",
                task.delivery.delivery_id,
                task.attempt,
            )
            return
        await self._slots.acquire(task.priority)
        IN_FLIGHT.inc()
        try:
            await self._deliver(task, meta)
        finally:
            IN_FLIGHT.dec()
            self._slots.release()
        self.delivered.add(task)

    async def _deliver(self, task: delivery_pb2.DeliveryTask, meta: MessageMeta) -> None:
        delivery = task.delivery
        with _tracer.start_as_current_span(SPAN_ATTEMPT) as span:
            span.set_attribute(DELIVERY_ID, delivery.delivery_id)
            span.set_attribute(ATTEMPT, task.attempt)
            span.set_attribute(RECIPIENT_DOMAIN, delivery.recipient_domain)
            span.set_attribute(SERVER, delivery.server)
            started = time.monotonic()
            result = await self.deliverer.attempt(task)
            ATTEMPT_SECONDS.observe(time.monotonic() - started)
            outcome = OUTCOME_KEYS[result.outcome]
            _ATTEMPTS_BY_OUTCOME[result.outcome].inc()
            span.set_attribute(OUTCOME, outcome)
            span.set_attribute(REPLY_CODE, result.reply_code)
            span.set_attribute(ENHANCED_STATUS, result.enhanced_status)
            span.set_attribute(MX_HOST, result.mx_host)
            span.set_attribute(SOURCE_IP, result.source_ip)
            span.set_attribute(TLS, result.tls)
            span.set_attribute(CONNECTION_REUSED, result.connection_reused)
            if span.is_recording():  # nothing to build when no one records the span
                _record_steps(span, result, outcome)
            logger.info(
                "%s attempt %d %s via %s%s: %d %s",
                delivery.delivery_id,
                task.attempt,
                outcome,
                result.mx_host or "-",
                " (redelivered task)" if meta.redelivered else "",
                result.reply_code,
                result.reply_text,
            )
            if result.outcome == delivery_pb2.OUTCOME_SUCCEEDED:
                # Nothing downstream reads a delivered message's content again (a retry needs
                # it, a failure's notice may): the result goes back without its copy.
                result.task.delivery.ClearField("content")
            await self._publish(result_key(task.shard, outcome), result)

    async def _publish(self, routing_key: str, result: delivery_pb2.DeliveryResult) -> None:
        # The mail is out: a short retry now saves a duplicate delivery of the requeued task.
        for attempt in range(1, PUBLISH_TRIES + 1):
            try:
                await self.broker.publish_grouped(routing_key, result)
                return
            except BrokerUnavailable as exc:
                if attempt == PUBLISH_TRIES:
                    raise
                logger.warning(
                    "%s result not confirmed (%s), retrying", result.task.delivery.delivery_id, exc
                )
                await asyncio.sleep(attempt)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for the deliveries in flight (results published, tasks
        acked). Those still running then are cancelled: their tasks are requeued for another
        sender. Returns how many were cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self._in_flight:
            logger.info("waiting for %d deliveries in flight", len(self._in_flight))
        # A loop: a task delivered just before the consumer was cancelled may join late.
        while self._in_flight and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._in_flight), timeout=remaining)
        late = set(self._in_flight)
        for task in late:
            task.cancel()
        if late:
            logger.warning("%d deliveries still running after %gs: requeued", len(late), grace)
            await asyncio.wait(late, timeout=5)
        return len(late)


def _record_steps(span: trace.Span, result: delivery_pb2.DeliveryResult, outcome: str) -> None:
    """The attempt's steps as span events at the moments they ended (MX lookup, connection and
    TLS, the reply), and a failed delivery's span marked as an error with its reply."""
    started = result.started_at.ToNanoseconds()
    looked_up = started + result.dns_ms * 1_000_000
    connected = looked_up + result.connect_ms * 1_000_000
    span.add_event(EVENT_MX_LOOKUP, {MX_HOST: result.mx_host, DNS_MS: result.dns_ms}, looked_up)
    connection: dict[str, str | bool] = {
        MX_ADDRESS: result.mx_address,
        CONNECTION_REUSED: result.connection_reused,
        TLS_VERSION: result.tls_version,
        TLS_CIPHER: result.tls_cipher,
        TLS_VERIFIED: result.tls_verified,
    }
    span.add_event(EVENT_CONNECTED, connection, connected)
    reply: dict[str, str | int] = {
        REPLY_CODE: result.reply_code,
        STAGE: result.stage,
        REPLY_TEXT: result.reply_text,
    }
    span.add_event(EVENT_REPLY, reply, result.finished_at.ToNanoseconds() or None)
    if outcome == "failed":
        span.set_status(trace.StatusCode.ERROR, f"{result.reply_code} {result.reply_text}".strip())
