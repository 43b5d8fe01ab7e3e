"""What the reports tests share: a migrated embedded ClickHouse, and events to ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from postline.common.clickhouse import apply_migrations, connect
from postline.common.timeutil import to_timestamp
from postline.v1 import events_pb2


def migrated(path: Path) -> str:
    """The DSN of an embedded ClickHouse at ``path`` with the whole schema."""
    client = connect(f"chdb://{path}")
    apply_migrations(client)
    client.close()
    return f"chdb://{path}"


NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def deliveries(n: int, prefix: str = "d") -> list[events_pb2.DeliveryEvent]:
    events = []
    for i in range(n):
        for k, status in enumerate(
            (events_pb2.DELIVERY_STATUS_QUEUED, events_pb2.DELIVERY_STATUS_SUCCEEDED)
        ):
            events.append(
                events_pb2.DeliveryEvent(
                    event_id=f"{prefix}{i}-{k}",
                    delivery_id=f"{prefix}{i}",
                    message_id=f"m{i}",
                    status=status,
                    at=to_timestamp(NOW.timestamp() + k),
                    accepted_at=to_timestamp(NOW.timestamp()),
                    server="default",
                    api_user="dev",
                    envelope_from="app@example.test",
                    recipient=f"r{i}@x.test",
                    recipient_domain="x.test",
                    reply_code=250 if k else 0,
                )
            )
    return events


def errors(n: int, prefix: str = "x") -> list[events_pb2.ErrorClassified]:
    return [
        events_pb2.ErrorClassified(
            event_id=f"{prefix}{i}",
            delivery_id=f"d{i}",
            created=to_timestamp(NOW.timestamp() + 5),
            status=events_pb2.ERROR_STATUS_UNKNOWN_USER,
            to=f"r{i}@x.test",
            reason="550 5.1.1",
            server="default",
            api_user="dev",
        )
        for i in range(n)
    ]
