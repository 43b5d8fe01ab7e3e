"""Events into ClickHouse: one insert per table per batch, written column by column.

A batch's rows are inserted with a deduplication token made of its event ids: when a batch
is retried after a failure (the same events, e.g. error_log failed after delivery_events was
written), ClickHouse drops the repeated insert, in the table and in the rollups fed by it.
Raw rows also carry their event id, so an event re-delivered in another batch merges away in
the logs (ReplacingMergeTree).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from clickhouse_connect.driver.client import Client
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter

from postline.common.broker.consumer import PoisonMessage
from postline.common.semconv import METRIC_INGESTED
from postline.reports.store import Store
from postline.v1 import events_pb2

logger = logging.getLogger(__name__)

INGESTED = Counter(METRIC_INGESTED, "events written to ClickHouse", ["kind"])

DELIVERY_EVENTS_TABLE = "postline.delivery_events"
ERROR_LOG_TABLE = "postline.error_log"

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

# Columns copied as they are: (ClickHouse column, protobuf field).
_DELIVERY_PLAIN = (
    "event_id", "delivery_id", "message_id", "server", "api_user", "envelope_from", "recipient",
    "recipient_domain", "subject", "api_data", "return_path", "header_message_id", "attempt",
    "reply_code", "enhanced_status", "reason", "mx_host", "source_ip", "error_status",
    "trace_id",
)  # fmt: skip
DELIVERY_EVENT_COLUMNS = (
    *_DELIVERY_PLAIN, "status", "at", "accepted_at", "next_attempt_at",
)  # fmt: skip
_ERROR_PLAIN = (
    ("event_id", "event_id"), ("delivery_id", "delivery_id"), ("message_id", "message_id"),
    ("envelope_from", "from"), ("recipient", "to"), ("header_message_id", "header_message_id"),
    ("return_path", "return_path"), ("subject", "subject"), ("api_data", "api_data"),
    ("reason", "reason"), ("permanent", "permanent"), ("reply_code", "reply_code"),
    ("enhanced_status", "enhanced_status"), ("server", "server"), ("api_user", "api_user"),
    ("trace_id", "trace_id"),
)  # fmt: skip
ERROR_COLUMNS = (*(c for c, _ in _ERROR_PLAIN), "created", "status", "source")

TYPES: dict[str, type[ProtoMessage]] = {
    events_pb2.DeliveryEvent.DESCRIPTOR.full_name: events_pb2.DeliveryEvent,
    events_pb2.ErrorClassified.DESCRIPTOR.full_name: events_pb2.ErrorClassified,
}


def millis(ts: Timestamp) -> int:
    """A Timestamp as epoch milliseconds: DateTime64(3) takes them as they are."""
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def _column(messages: Sequence[ProtoMessage], field: str) -> list[Any]:
    return list(map(attrgetter(field), messages))


def delivery_columns(events: Sequence[events_pb2.DeliveryEvent]) -> list[list[Any]]:
    """Column-oriented rows of ``delivery_events``, in ``DELIVERY_EVENT_COLUMNS`` order."""
    columns = [_column(events, name) for name in _DELIVERY_PLAIN]
    columns.append([DELIVERY_STATUS_NAMES[e.status] for e in events])
    columns.append([millis(e.at) for e in events])
    columns.append([millis(e.accepted_at) for e in events])
    columns.append(
        [millis(e.next_attempt_at) if e.HasField("next_attempt_at") else None for e in events]
    )
    return columns


def error_columns(errors: Sequence[events_pb2.ErrorClassified]) -> list[list[Any]]:
    """Column-oriented rows of ``error_log``, in ``ERROR_COLUMNS`` order."""
    columns = [_column(errors, field) for _, field in _ERROR_PLAIN]
    columns.append([millis(e.created) for e in errors])
    columns.append([int(e.status) for e in errors])
    columns.append([ERROR_SOURCE_NAMES.get(e.source, "unknown") for e in errors])
    return columns


def check(event: ProtoMessage) -> None:
    """Refuse an event no row can be made of (it is dead-lettered, the batch goes on)."""
    if not getattr(event, "event_id", ""):
        raise PoisonMessage("event without event_id")
    if isinstance(event, events_pb2.DeliveryEvent):
        if event.status not in DELIVERY_STATUS_NAMES:
            raise PoisonMessage(f"event {event.event_id}: no delivery status")
        if not event.delivery_id:
            raise PoisonMessage(f"event {event.event_id}: no delivery_id")


def batch_token(table: str, event_ids: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(table.encode())
    for event_id in event_ids:
        digest.update(b"\0" + event_id.encode())
    return digest.hexdigest()


class Ingest:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def write(self, events: Sequence[ProtoMessage]) -> None:
        """Write one batch: returns once ClickHouse accepted every row, raises otherwise."""
        deliveries = [e for e in events if isinstance(e, events_pb2.DeliveryEvent)]
        errors = [e for e in events if isinstance(e, events_pb2.ErrorClassified)]
        # Columns are built on the writer thread too: the event loop keeps serving the API
        # and taking the next batch while this one is converted and written.
        await self.store.write(lambda client: self._insert(client, deliveries, errors))
        INGESTED.labels("delivery").inc(len(deliveries))
        INGESTED.labels("error").inc(len(errors))

    @staticmethod
    def _insert(
        client: Client,
        deliveries: Sequence[events_pb2.DeliveryEvent],
        errors: Sequence[events_pb2.ErrorClassified],
    ) -> None:
        if deliveries:
            _insert(
                client,
                DELIVERY_EVENTS_TABLE,
                delivery_columns(deliveries),
                DELIVERY_EVENT_COLUMNS,
                [e.event_id for e in deliveries],
            )
        if errors:
            _insert(
                client,
                ERROR_LOG_TABLE,
                error_columns(errors),
                ERROR_COLUMNS,
                [e.event_id for e in errors],
            )


def _insert(
    client: Client,
    table: str,
    columns: list[list[Any]],
    names: Sequence[str],
    event_ids: Sequence[str],
) -> None:
    client.insert(
        table,
        columns,
        column_names=list(names),
        column_oriented=True,
        settings={
            "insert_deduplication_token": batch_token(table, event_ids),
            # the rollups and the delivery log are fed side by side, not one after another
            "parallel_view_processing": 1,
        },
    )
