"""The fan-out: every event a webhook wants, into its endpoint's queue.

Services publish events in batches that mix types and servers (``DeliveryEvents``,
``ErrorEvents``), plus suppression changes and complaints. The fan-out queue
(``webhooks.fanout``) is bound to just the routing keys the endpoints' subscriptions need;
each message is turned into webhook events (``events.py``), those of each endpoint go to its
queue as ``WebhookBatch`` messages of at most ``batch_size`` events, and the message is acked
once every one of those publishes was confirmed. A failed publish requeues the message (its
events may then reach an endpoint twice: each carries its id).

It runs on its own channel and consumer, beside the reports ingest and apart from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from google.protobuf.message import Message as ProtoMessage
from prometheus_client import Counter

from postline.common.broker import Broker
from postline.common.broker.consumer import MessageMeta
from postline.common.broker.topology import (
    COMPLAINT_KEY,
    DELIVERY_EVENT_KEY,
    DELIVERY_OUTCOME_KEY,
    ERROR_EVENT_KEY,
    SUPPRESSION_KEY,
)
from postline.common.semconv import METRIC_WEBHOOK_FANOUT
from postline.common.timeutil import to_timestamp
from postline.common.webhooks import Endpoint
from postline.reports.webhooks.events import chunks, source_events, webhook_event
from postline.v1 import webhooks_pb2

logger = logging.getLogger(__name__)

FANNED_OUT = Counter(
    METRIC_WEBHOOK_FANOUT, "events queued for webhook endpoints", ["endpoint", "type"]
)

# Where each webhook event type comes from.
SOURCE_KEYS = {
    "queued": DELIVERY_EVENT_KEY,
    "deferred": DELIVERY_OUTCOME_KEY,
    "succeeded": DELIVERY_OUTCOME_KEY,
    "failed": DELIVERY_OUTCOME_KEY,
    "bounced": ERROR_EVENT_KEY,
    "complained": COMPLAINT_KEY,
    "suppressed": SUPPRESSION_KEY,
}


class Fanout:
    def __init__(self, broker: Broker, endpoints: list[Endpoint], batch_size: int) -> None:
        self.broker = broker
        self.batch_size = batch_size
        self.by_server: dict[str, list[Endpoint]] = defaultdict(list)
        for endpoint in endpoints:
            self.by_server[endpoint.owner].append(endpoint)

    def routing_keys(self) -> frozenset[str]:
        """What the fan-out queue must be bound to for the endpoints' subscriptions."""
        return frozenset(
            SOURCE_KEYS[kind]
            for endpoints in self.by_server.values()
            for endpoint in endpoints
            for kind in endpoint.events
        )

    async def handle(self, message: ProtoMessage, meta: MessageMeta) -> None:
        wanted: dict[str, tuple[Endpoint, list[webhooks_pb2.WebhookEvent]]] = {}
        for source in source_events(message):
            event = webhook_event(source)
            if event is None:
                continue
            for endpoint in self.by_server.get(event.server, ()):
                if endpoint.wants(event.type):
                    wanted.setdefault(endpoint.id, (endpoint, []))[1].append(event)
                    FANNED_OUT.labels(endpoint.label, event.type).inc()
        if not wanted:
            return
        created = to_timestamp(time.time())
        await asyncio.gather(
            *(
                self.broker.publish(
                    endpoint.routing_key, webhooks_pb2.WebhookBatch(created=created, events=chunk)
                )
                for endpoint, events in wanted.values()
                for chunk in chunks(events, self.batch_size)
            )
        )
