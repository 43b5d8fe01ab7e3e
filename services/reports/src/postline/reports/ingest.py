"""Events from RabbitMQ into ClickHouse; a message is acked only after its row was written.

A failed insert raises, so the consumer requeues the event: while ClickHouse is down events
wait in ``reports.events``. Rows carry the event id, so a re-delivered event merges away.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Counter

from postline.common.broker.consumer import Delivery
from postline.common.semconv import METRIC_INGESTED
from postline.common.timeutil import to_datetime
from postline.reports.store import Store
from postline.v1 import events_pb2

logger = logging.getLogger(__name__)

INGESTED = Counter(METRIC_INGESTED, "events written to ClickHouse", ["kind"])

DELIVERY_STATUS_NAMES = {
    events_pb2.DELIVERY_STATUS_QUEUED: "queued",
    events_pb2.DELIVERY_STATUS_DEFERRED: "deferred",
    events_pb2.DELIVERY_STATUS_SUCCEEDED: "succeeded",
    events_pb2.DELIVERY_STATUS_FAILED: "failed",
}
ERROR_SOURCE_NAMES = {
    events_pb2.ERROR_SOURCE_SMTP_REPLY: "smtp_reply",
    events_pb2.ERROR_SOURCE_BOUNCE_MAIL: "bounce_mail",
    events_pb2.ERROR_SOURCE_POLICY: "policy",
}

DELIVERY_EVENT_COLUMNS = (
    "event_id", "delivery_id", "message_id", "status", "at", "accepted_at", "server", "api_user",
    "envelope_from", "recipient", "recipient_domain", "subject", "api_data", "return_path",
    "header_message_id", "attempt", "reply_code", "enhanced_status", "reason", "mx_host",
    "source_ip", "error_status", "next_attempt_at", "trace_id",
)  # fmt: skip
ERROR_COLUMNS = (
    "event_id", "delivery_id", "message_id", "created", "status", "envelope_from", "recipient",
    "header_message_id", "return_path", "subject", "api_data", "reason", "source", "permanent",
    "reply_code", "enhanced_status", "server", "api_user", "trace_id",
)  # fmt: skip

TYPES = {
    events_pb2.DeliveryEvent.DESCRIPTOR.full_name: events_pb2.DeliveryEvent,
    events_pb2.ErrorClassified.DESCRIPTOR.full_name: events_pb2.ErrorClassified,
}


def delivery_row(e: events_pb2.DeliveryEvent) -> list[Any]:
    return [
        e.event_id, e.delivery_id, e.message_id, DELIVERY_STATUS_NAMES[e.status], to_datetime(e.at),
        to_datetime(e.accepted_at), e.server, e.api_user, e.envelope_from, e.recipient,
        e.recipient_domain, e.subject, e.api_data, e.return_path, e.header_message_id, e.attempt,
        e.reply_code, e.enhanced_status, e.reason, e.mx_host, e.source_ip, e.error_status,
        to_datetime(e.next_attempt_at) if e.HasField("next_attempt_at") else None, e.trace_id,
    ]  # fmt: skip


def error_row(e: events_pb2.ErrorClassified) -> list[Any]:
    return [
        e.event_id, e.delivery_id, e.message_id, to_datetime(e.created), int(e.status),
        getattr(e, "from"), e.to, e.header_message_id, e.return_path, e.subject, e.api_data,
        e.reason, ERROR_SOURCE_NAMES.get(e.source, "unknown"), e.permanent, e.reply_code,
        e.enhanced_status, e.server, e.api_user, e.trace_id,
    ]  # fmt: skip


class Ingest:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def on_event(
        self, event: events_pb2.DeliveryEvent | events_pb2.ErrorClassified, meta: Delivery
    ) -> None:
        if isinstance(event, events_pb2.DeliveryEvent):
            await self.store.insert(
                "postline.delivery_events", [delivery_row(event)], DELIVERY_EVENT_COLUMNS
            )
            INGESTED.labels("delivery").inc()
        else:
            await self.store.insert("postline.error_log", [error_row(event)], ERROR_COLUMNS)
            INGESTED.labels("error").inc()
