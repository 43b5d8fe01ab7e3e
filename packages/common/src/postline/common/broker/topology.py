"""Every exchange, queue, binding and queue argument of Postline, declared in one module.

One topic exchange (``postline``) carries all work; routing keys say what a message is:

==========================  =====================================  ==========================
routing key                 queue                                  consumer
==========================  =====================================  ==========================
``accepted.<k>``            ``scheduler.inbound.<k>`` (SAC)        scheduler shard k
``accepted.<k>.urgent``     ``scheduler.urgent.<k>`` (SAC)         scheduler shard k (first)
``result.<k>.<outcome>``    ``scheduler.results.<k>`` (SAC)        scheduler shard k
``result.*.failed``         ``bounce.results``                     bounce
``task``                    ``sender.tasks`` (priority 0..3)       senders (competing)
``event.#``                 ``reports.events``                     reports
``event.delivery``          ``bounce.deliveries``                  bounce (who a bounce is for)
``event.delivery.outcome``  (reports.events; the webhook fan-out)  —
``suppression.change``      one exclusive queue per scheduler      schedulers
``complaint``, and event    ``webhooks.fanout`` (reports binds     reports: webhook fan-out
keys webhooks want          what endpoints subscribed to)
``webhook.<endpoint id>``   ``webhooks.<endpoint id>`` (SAC)       reports: one POSTer each
==========================  =====================================  ==========================

A delivery's ``queued`` event goes to ``event.delivery``, its later ones (deferred, succeeded,
failed) to ``event.delivery.outcome``: bounce keeps a record of each delivery from its queued
event only, so it is sent no other (RabbitMQ routes, stores and delivers half as many event
messages to it). A producer of an older release sends every delivery event to
``event.delivery``; bounce ignores the ones it does not need, as it always did.

Webhook endpoints come from the policy, so their queues are declared by the services that
use them (``declare_webhook_queue``: reports for every endpoint, bounce for the inbound ones
it publishes incoming mail to), not at every start-up. A webhook batch that failed waits in
the delay queues like a retry and comes back to its endpoint's queue.

Delays (retry intervals, prohibited hours, parked backlogs) use one fanout exchange and one
queue per bucket, ``delay.<seconds>``: a message published there with its original routing key
expires after the bucket's TTL and is dead-lettered back to ``postline`` with that key, so it
returns to its shard queue. RabbitMQ 3.10 has no delayed-message plugin, and a per-queue TTL
(rather than per-message) never leaves an expired message stuck behind a longer-lived one.
Waits longer than the largest bucket hop through it and are re-evaluated on each return.

High-priority deliveries come in by their own queue, ``scheduler.urgent.<k>``: a shard's
inbound queue is first-in first-out, and one high-priority mail must not wait while the
scheduler reads through a backlog of thousands ahead of it.

Work that fails to decode is rejected to ``postline.dead`` (via ``postline.dlx``) for a human.

The scheduler's own bookkeeping (shard ownership tokens, per-shard state, per-destination
backlog queues, the pause stream, statistics) is declared by the scheduler:
``postline.scheduler.queues``; the reports service declares ``reports.summary.owner`` (which
replica sends the weekly summaries, ``postline.reports.summary.runner``).

Queue type (``POSTLINE_QUEUE_TYPE``, the same for every service, like the shard count):

- ``classic`` (the default): every queue is a classic queue. A RabbitMQ cluster does not
  replicate them: a message lives on the node that holds its queue, and is gone if that
  node's disk is.
- ``quorum``: the shard queues, the result, event and delay queues and the dead-letter queue
  are quorum queues, replicated over the cluster's nodes (Raft; a majority must be up for the
  queue to work). Their dead-lettering is at-least-once, so a delayed message is never dropped
  on its way back from a delay queue. ``sender.tasks`` stays classic: it is a priority queue,
  and quorum queues before RabbitMQ 4.0 cannot have ``x-max-priority``.

Queues are declared once with their arguments: switching the type of an existing deployment
means draining and deleting the queues first (docs/deploy.md, "Upgrading").
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

EXCHANGE = "postline"
DEAD_LETTER_EXCHANGE = "postline.dlx"
DEAD_LETTER_QUEUE = "postline.dead"
SENDER_TASKS = "sender.tasks"
BOUNCE_RESULTS = "bounce.results"
BOUNCE_DELIVERIES = "bounce.deliveries"
REPORTS_EVENTS = "reports.events"

TASK_KEY = "task"
DELIVERY_EVENT_KEY = "event.delivery"  # a delivery's queued event
DELIVERY_OUTCOME_KEY = "event.delivery.outcome"  # its deferred, succeeded, failed events
ERROR_EVENT_KEY = "event.error"
SUPPRESSION_KEY = "suppression.change"
COMPLAINT_KEY = "complaint"
WEBHOOK_FANOUT = "webhooks.fanout"

# What event webhooks are made of (the fan-out binds the ones its endpoints need).
WEBHOOK_SOURCE_KEYS = (
    DELIVERY_EVENT_KEY,
    DELIVERY_OUTCOME_KEY,
    ERROR_EVENT_KEY,
    SUPPRESSION_KEY,
    COMPLAINT_KEY,
)

# Priority levels map to AMQP priorities 1..3 (0 = unspecified); a classic queue, since
# quorum queues cannot have x-max-priority on 3.10.
MAX_PRIORITY = 3

QueueType = Literal["classic", "quorum"]
QUEUE_TYPES: tuple[QueueType, ...] = ("classic", "quorum")

# Delay buckets in seconds, smallest first.
DELAY_BUCKETS: tuple[int, ...] = (1, 5, 15, 60, 300, 900, 3600)


def shard_for(domain: str, shards: int) -> int:
    """The scheduler shard owning a recipient domain (stable across processes and restarts)."""
    return zlib.crc32(domain.lower().encode()) % shards


def inbound_queue(shard: int) -> str:
    return f"scheduler.inbound.{shard}"


def urgent_queue(shard: int) -> str:
    return f"scheduler.urgent.{shard}"


def urgent_key(shard: int) -> str:
    return f"accepted.{shard}.urgent"


def results_queue(shard: int) -> str:
    return f"scheduler.results.{shard}"


def accepted_key(shard: int) -> str:
    return f"accepted.{shard}"


def result_key(shard: int, outcome: str) -> str:
    return f"result.{shard}.{outcome}"


def delay_exchange(bucket: int) -> str:
    return f"postline.delay.{bucket}"


def delay_queue(bucket: int) -> str:
    return f"delay.{bucket}"


def webhook_queue(endpoint_id: str) -> str:
    return f"webhooks.{endpoint_id}"


def webhook_key(endpoint_id: str) -> str:
    return f"webhook.{endpoint_id}"


def delay_bucket(seconds: float) -> int:
    """The bucket for a wait: the largest not longer than it (the smallest for short waits)."""
    fitting = [b for b in DELAY_BUCKETS if b <= seconds]
    return fitting[-1] if fitting else DELAY_BUCKETS[0]


@dataclass(frozen=True)
class QueueSpec:
    name: str
    bindings: tuple[str, ...]
    arguments: dict[str, Any] = field(default_factory=dict)
    exchange: str = EXCHANGE


@dataclass(frozen=True)
class Topology:
    """The whole topology for a deployment with ``shards`` scheduler shards and durable queues
    of ``queue_type`` (see the module's docstring)."""

    shards: int
    queue_type: QueueType = "classic"

    def __post_init__(self) -> None:
        if self.queue_type not in QUEUE_TYPES:
            raise ValueError(f"queue_type must be one of {QUEUE_TYPES}, not {self.queue_type!r}")

    def arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """A durable queue's arguments for this deployment's queue type.

        A priority queue stays classic (quorum queues before RabbitMQ 4.0 have no
        ``x-max-priority``). A quorum queue that dead-letters does it at least once: RabbitMQ
        keeps the message until the dead-letter exchange's queues confirmed it, which needs
        ``reject-publish`` overflow (the default, drop-head, would be at most once).
        """
        if self.queue_type == "classic" or "x-max-priority" in arguments:
            return arguments
        quorum = {**arguments, "x-queue-type": "quorum"}
        if "x-dead-letter-exchange" in arguments:
            quorum |= {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        return quorum

    def queues(self) -> list[QueueSpec]:
        dead = {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
        sac = {**dead, "x-single-active-consumer": True}
        specs = []
        for k in range(self.shards):
            specs.append(QueueSpec(inbound_queue(k), (accepted_key(k),), sac))
            specs.append(QueueSpec(urgent_queue(k), (urgent_key(k),), sac))
            specs.append(QueueSpec(results_queue(k), (f"result.{k}.*",), sac))
        specs.append(QueueSpec(SENDER_TASKS, (TASK_KEY,), {**dead, "x-max-priority": MAX_PRIORITY}))
        specs.append(QueueSpec(BOUNCE_RESULTS, ("result.*.failed",), dead))
        specs.append(QueueSpec(BOUNCE_DELIVERIES, (DELIVERY_EVENT_KEY,), dead))
        specs.append(QueueSpec(REPORTS_EVENTS, ("event.#",), dead))
        # Complaints have no other queue: bound here so bounce's publish is always routable.
        specs.append(QueueSpec(WEBHOOK_FANOUT, (COMPLAINT_KEY,), dead))
        for bucket in DELAY_BUCKETS:
            args = {"x-message-ttl": bucket * 1000, "x-dead-letter-exchange": EXCHANGE}
            specs.append(
                QueueSpec(delay_queue(bucket), ("",), args, exchange=delay_exchange(bucket))
            )
        return [
            QueueSpec(spec.name, spec.bindings, self.arguments(spec.arguments), spec.exchange)
            for spec in specs
        ]

    async def declare(self, channel: AbstractChannel) -> AbstractExchange:
        """Declare everything (idempotent); every service does this at start-up."""
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dlx = await channel.declare_exchange(
            DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead = await channel.declare_queue(
            DEAD_LETTER_QUEUE, durable=True, arguments=self.arguments({})
        )
        await dead.bind(dlx)
        for bucket in DELAY_BUCKETS:
            await channel.declare_exchange(
                delay_exchange(bucket), aio_pika.ExchangeType.FANOUT, durable=True
            )
        for spec in self.queues():
            queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
            for key in spec.bindings:
                await queue.bind(spec.exchange, routing_key=key)
        return exchange

    async def declare_webhook_queue(
        self, channel: AbstractChannel, endpoint_id: str
    ) -> AbstractQueue:
        """An endpoint's queue. Single active consumer: one process POSTs to an endpoint at a
        time (other reports replicas stand by), so its pace and its backoff are one."""
        arguments = self.arguments(
            {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE, "x-single-active-consumer": True}
        )
        queue = await channel.declare_queue(
            webhook_queue(endpoint_id), durable=True, arguments=arguments
        )
        await queue.bind(EXCHANGE, routing_key=webhook_key(endpoint_id))
        return queue

    async def declare_webhook_fanout(
        self, channel: AbstractChannel, keys: frozenset[str]
    ) -> AbstractQueue:
        """The fan-out queue, bound to ``keys`` (what the endpoints subscribed to) and to
        ``complaint`` (always, see ``queues``): without event webhooks it receives only the
        rare complaint."""
        arguments = self.arguments({"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE})
        queue = await channel.declare_queue(WEBHOOK_FANOUT, durable=True, arguments=arguments)
        for key in WEBHOOK_SOURCE_KEYS:
            if key in keys or key == COMPLAINT_KEY:
                await queue.bind(EXCHANGE, routing_key=key)
            else:
                await queue.unbind(EXCHANGE, routing_key=key)
        return queue

    async def declare_suppression_queue(self, channel: AbstractChannel) -> AbstractQueue:
        """A private queue per scheduler replica, so every replica sees every change."""
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(EXCHANGE, routing_key=SUPPRESSION_KEY)
        return queue
