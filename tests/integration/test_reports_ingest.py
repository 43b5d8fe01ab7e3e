"""Batched ingest from the real RabbitMQ into real ClickHouse (chdb), including a ClickHouse
failure: while a table is missing, inserts really fail, events stay in RabbitMQ, and after
recovery every event is stored exactly once (rollups included)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest_asyncio

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import (
    DEAD_LETTER_QUEUE,
    DELIVERY_EVENT_KEY,
    ERROR_EVENT_KEY,
    REPORTS_EVENTS,
)
from postline.common.clickhouse import apply_migrations, connect
from postline.common.timeutil import to_timestamp
from postline.reports.batching import Backoff, BatchConsumer
from postline.reports.ingest import TYPES, Ingest, check
from postline.reports.store import Store
from postline.v1 import events_pb2

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


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    client = connect(f"chdb://{tmp_path / 'ch'}")
    apply_migrations(client)
    client.close()
    store = Store(f"chdb://{tmp_path / 'ch'}")
    try:
        yield store
    finally:
        store.close()


@pytest_asyncio.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(amqp_url, Topology(1))
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


async def publish(broker: Broker, events: list[Any]) -> None:
    for event in events:
        key = DELIVERY_EVENT_KEY if isinstance(event, events_pb2.DeliveryEvent) else ERROR_EVENT_KEY
        await broker.publish(key, event)


async def scalar(store: Store, sql: str) -> int:
    return int(await store.run(lambda c: c.query(sql).result_rows[0][0]))


async def wait_for(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def queue_counts(vhost: str, name: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of a queue, as RabbitMQ itself counts them."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages_ready",
         "messages_unacknowledged"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return int(fields[1]), int(fields[2])
    raise AssertionError(f"no queue {name} in {out!r}")


async def queue_depth(broker: Broker, name: str) -> int:
    channel = await broker.connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await channel.close()


async def stored(store: Store) -> tuple[int, int, int, int]:
    """(distinct delivery events, error rows, delivery events, queued in the rollup)."""
    return (
        await scalar(store, "SELECT count() FROM postline.delivery_events FINAL"),
        await scalar(store, "SELECT count() FROM postline.error_log FINAL"),
        await scalar(store, "SELECT count() FROM postline.delivery_events"),
        await scalar(store, "SELECT sum(queued) FROM postline.stats_hourly"),
    )


async def test_events_are_written_in_batches_and_acked(broker: Broker, store: Store) -> None:
    consumer = BatchConsumer(
        broker, REPORTS_EVENTS, TYPES, Ingest(store).write, check=check, max_events=50
    )
    await consumer.start()
    try:
        await publish(broker, [*deliveries(100), *errors(30)])
        await wait_for(
            lambda: _equals(stored(store), (200, 30, 200, 100)), "every event in ClickHouse"
        )
        await wait_for(lambda: _zero(queue_depth(broker, REPORTS_EVENTS)), "an empty queue")
        rows = await scalar(store, "SELECT count() FROM postline.delivery_log FINAL")
        assert rows == 100
    finally:
        await consumer.stop()


async def _equals(got: Any, expected: Any) -> bool:
    return bool(await got == expected)


async def _zero(got: Any) -> bool:
    return bool(await got == 0)


async def test_clickhouse_failure_loses_nothing_and_counts_once(
    broker: Broker, store: Store, management_vhost: str
) -> None:
    # The error log disappears (as on a failed disk or a dropped table): the batch fails on
    # its second insert, after its delivery events were written.
    await store.run(lambda c: c.command("DETACH TABLE postline.error_log"))
    await publish(broker, [*deliveries(60), *errors(20)])  # one batch of 140 events
    consumer = BatchConsumer(
        broker,
        REPORTS_EVENTS,
        TYPES,
        Ingest(store).write,
        check=check,
        max_events=1000,
        max_wait=0.2,
        hold=120.0,  # retried in place: the same batch, the same deduplication token
        backoff=Backoff(first=0.2, maximum=0.5),
    )
    await consumer.start()
    try:
        await wait_for(lambda: _failing(consumer), "failed writes")
        # Nothing was acked: RabbitMQ still holds every event.
        counts = await asyncio.to_thread(queue_counts, management_vhost, REPORTS_EVENTS)
        assert counts == (0, 140)
        assert await _count_events(store) == 120  # the batch's first insert went through
        await store.run(lambda c: c.command("ATTACH TABLE postline.error_log"))
        await wait_for(lambda: _recovered(consumer), "a successful write")
        # Exactly once: the retried delivery-events insert was dropped as a duplicate, in
        # the table (no second copy even before merges) and in the rollups.
        assert await stored(store) == (120, 20, 120, 60)
    finally:
        await consumer.stop()
    assert await asyncio.to_thread(queue_counts, management_vhost, REPORTS_EVENTS) == (0, 0)


async def _failing(consumer: BatchConsumer) -> bool:
    return consumer.failures >= 2


async def _recovered(consumer: BatchConsumer) -> bool:
    return consumer.healthy


async def test_a_long_failure_hands_the_events_back_to_the_queue(
    broker: Broker, store: Store, management_vhost: str
) -> None:
    await store.run(lambda c: c.command("DETACH TABLE postline.delivery_events"))
    consumer = BatchConsumer(
        broker,
        REPORTS_EVENTS,
        TYPES,
        Ingest(store).write,
        check=check,
        max_events=1000,
        max_wait=0.2,
        hold=0.3,
        backoff=Backoff(first=1.0, maximum=1.0),
    )
    await consumer.start()
    try:
        await publish(broker, deliveries(40))
        await wait_for(lambda: _failing(consumer), "failed writes")

        # Between two tries the events wait in the queue itself, ready for any consumer.
        async def all_ready() -> bool:
            counts = await asyncio.to_thread(queue_counts, management_vhost, REPORTS_EVENTS)
            return counts == (80, 0)

        await wait_for(all_ready, "the events back in the queue")
        await store.run(lambda c: c.command("ATTACH TABLE postline.delivery_events"))
        await wait_for(lambda: _recovered(consumer), "a successful write")
        await wait_for(lambda: _zero(queue_depth(broker, REPORTS_EVENTS)), "an empty queue")
        distinct = await scalar(store, "SELECT count() FROM postline.delivery_events FINAL")
        assert distinct == 80
        log = await scalar(store, "SELECT count() FROM postline.delivery_log FINAL")
        assert log == 40
    finally:
        await consumer.stop()


async def _positive(got: Any) -> bool:
    return bool(await got > 0)


async def test_poison_events_are_dead_lettered_alone(broker: Broker, store: Store) -> None:
    consumer = BatchConsumer(broker, REPORTS_EVENTS, TYPES, Ingest(store).write, check=check)
    await consumer.start()
    try:
        channel = await broker.connection.channel()
        exchange = await channel.get_exchange("postline")
        garbage = aio_pika.Message(
            b"\xff\xfe not protobuf",
            headers={"x-postline-type": "postline.v1.DeliveryEvent"},
        )
        await exchange.publish(garbage, routing_key=DELIVERY_EVENT_KEY)
        unknown_status = events_pb2.DeliveryEvent(event_id="bad", delivery_id="d-bad")
        await publish(broker, [unknown_status, *deliveries(5)])
        await channel.close()
        await wait_for(lambda: _equals(_count_events(store), 10), "the good events")
        await wait_for(lambda: _equals(queue_depth(broker, DEAD_LETTER_QUEUE), 2), "2 dead")
    finally:
        await consumer.stop()


async def _count_events(store: Store) -> int:
    return await scalar(store, "SELECT count() FROM postline.delivery_events FINAL")


async def test_stop_writes_what_is_buffered(broker: Broker, store: Store) -> None:
    # A batch that would wait a minute to fill is written at once when the service stops.
    consumer = BatchConsumer(
        broker, REPORTS_EVENTS, TYPES, Ingest(store).write, check=check, max_wait=60.0
    )
    await consumer.start()
    await publish(broker, deliveries(10))
    await wait_for(lambda: _buffered(consumer, 20), "20 buffered events")
    await consumer.stop()
    assert await _count_events(store) == 20
    assert await queue_depth(broker, REPORTS_EVENTS) == 0


async def _buffered(consumer: BatchConsumer, n: int) -> bool:
    return len(consumer._pending) >= n
