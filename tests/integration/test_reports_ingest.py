"""Batched ingest from the real RabbitMQ into real ClickHouse (chdb), including a ClickHouse
failure: while a table is missing, inserts really fail, events stay in RabbitMQ, and after
recovery every event is stored exactly once (rollups included); and a broken part, which is
detached so that inserts go on."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import (
    DEAD_LETTER_QUEUE,
    DELIVERY_EVENT_KEY,
    ERROR_EVENT_KEY,
    REPORTS_EVENTS,
)
from postline.common.clickhouse.broken_parts import broken_parts
from postline.common.timeutil import to_timestamp
from postline.reports.batching import Backoff, BatchConsumer
from postline.reports.ingest import KINDS, Ingest, PoisonEvents
from postline.reports.store import Store
from postline.v1 import events_pb2
from tests.faults_support import Ballast, can_mount
from tests.integration.reports_support import NOW, deliveries, errors, migrated
from tests.polling import apoll_until
from tests.rabbitmq_node import RabbitNode


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


async def all_written(broker: Broker, store: Store, counts: tuple[int, ...]) -> None:
    """Wait until ClickHouse holds ``counts`` (see ``stored``) and the queue is empty."""
    await apoll_until(
        lambda: _equals(stored(store), counts), "every event in ClickHouse", timeout=60
    )
    await apoll_until(
        lambda: _zero(queue_depth(broker, REPORTS_EVENTS)), "an empty queue", timeout=60
    )


async def test_events_are_written_in_batches_and_acked(broker: Broker, store: Store) -> None:
    consumer = BatchConsumer(broker, REPORTS_EVENTS, Ingest(store).write, max_events=50)
    await consumer.start()
    try:
        await publish(broker, [*deliveries(100), *errors(30)])
        await all_written(broker, store, (200, 30, 200, 100))
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
        Ingest(store).write,
        # One batch of all 140 messages, however slowly a loaded machine takes them in: it is
        # full at 140 (max_bytes keeps the prefetch at 2 x 140, so all of them come at once)
        # and no short wait sends a part of it early.
        max_events=140,
        max_bytes=64 * 1024 * 1024,
        max_wait=60.0,
        retry_for=120.0,  # retried in place: the same batch, the same deduplication token
        backoff=Backoff(first=0.2, maximum=0.5),
    )
    await consumer.start()
    try:
        await apoll_until(lambda: _failing(consumer), "failed writes", timeout=60)
        # Nothing was acked: RabbitMQ still holds every event.
        counts = await asyncio.to_thread(queue_counts, management_vhost, REPORTS_EVENTS)
        assert counts == (0, 140)
        assert await _count_events(store) == 120  # the batch's first insert went through
        await store.run(lambda c: c.command("ATTACH TABLE postline.error_log"))
        await apoll_until(lambda: _recovered(consumer), "a successful write", timeout=60)
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
        Ingest(store).write,
        max_events=1000,
        max_wait=0.2,
        retry_for=0.3,
        backoff=Backoff(first=1.0, maximum=1.0),
    )
    await consumer.start()
    try:
        await publish(broker, deliveries(40))
        await apoll_until(lambda: _failing(consumer), "failed writes", timeout=60)

        # Between two tries the events wait in the queue itself, ready for any consumer.
        async def all_ready() -> bool:
            counts = await asyncio.to_thread(queue_counts, management_vhost, REPORTS_EVENTS)
            return counts == (80, 0)

        await apoll_until(all_ready, "the events back in the queue", timeout=60)
        await store.run(lambda c: c.command("ATTACH TABLE postline.delivery_events"))
        await apoll_until(lambda: _recovered(consumer), "a successful write", timeout=60)
        await apoll_until(
            lambda: _zero(queue_depth(broker, REPORTS_EVENTS)), "an empty queue", timeout=60
        )
        distinct = await scalar(store, "SELECT count() FROM postline.delivery_events FINAL")
        assert distinct == 80
        log = await scalar(store, "SELECT count() FROM postline.delivery_log FINAL")
        assert log == 40
    finally:
        await consumer.stop()


async def _positive(got: Any) -> bool:
    return bool(await got > 0)


async def test_poison_events_are_dead_lettered_alone(broker: Broker, store: Store) -> None:
    consumer = BatchConsumer(broker, REPORTS_EVENTS, Ingest(store).write)
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
        # A batch message with one event no row can be made of goes to the dead letters
        # whole (nothing of it written); the batch beside it is written.
        spoiled = events_pb2.DeliveryEvents(
            events=[*deliveries(2, prefix="s"), events_pb2.DeliveryEvent(event_id="x", status=1)]
        )
        await broker.publish(DELIVERY_EVENT_KEY, spoiled)  # (and the event has no time)
        await broker.publish(
            DELIVERY_EVENT_KEY, events_pb2.DeliveryEvents(events=deliveries(3, prefix="b"))
        )
        await channel.close()
        await apoll_until(lambda: _equals(_count_events(store), 16), "the good events", timeout=60)
        await apoll_until(
            lambda: _equals(queue_depth(broker, DEAD_LETTER_QUEUE), 3), "3 dead", timeout=60
        )
        assert await _count_events(store) == 16
    finally:
        await consumer.stop()


async def _count_events(store: Store) -> int:
    return await scalar(store, "SELECT count() FROM postline.delivery_events FINAL")


async def test_stop_writes_what_is_buffered(broker: Broker, store: Store) -> None:
    # A batch that would wait a minute to fill is written at once when the service stops.
    consumer = BatchConsumer(broker, REPORTS_EVENTS, Ingest(store).write, max_wait=60.0)
    await consumer.start()
    await publish(broker, deliveries(10))
    await apoll_until(lambda: _buffered(consumer, 20), "20 buffered events", timeout=60)
    await consumer.stop()
    assert await _count_events(store) == 20
    assert await queue_depth(broker, REPORTS_EVENTS) == 0


async def _buffered(consumer: BatchConsumer, n: int) -> bool:
    return len(consumer._pending) >= n


def raw(event: Any) -> tuple[str, bytes]:
    return event.DESCRIPTOR.full_name, event.SerializeToString()


async def test_every_field_reaches_its_column(store: Store) -> None:
    at = NOW.timestamp() + 0.123
    full = events_pb2.DeliveryEvent(
        event_id="e1", delivery_id="d1", message_id="m1",
        status=events_pb2.DELIVERY_STATUS_DEFERRED, at=to_timestamp(at),
        accepted_at=to_timestamp(NOW.timestamp()), server="campaigns", api_user="app",
        envelope_from="app@example.test", recipient="Taro@X.test", recipient_domain="x.test",
        subject='a, "quoted"\nsubject 日本語', api_data='{"k": 1}',
        return_path="bounce-d1@bounce.example.test", header_message_id="<h1@example.test>",
        attempt=2, reply_code=451, enhanced_status="4.7.1", reason="451 4.7.1 greylisted",
        mx_host="mx.x.test", source_ip="192.0.2.1", error_status=0,
        next_attempt_at=to_timestamp(NOW.timestamp() + 600), trace_id="ab" * 16,
    )  # fmt: skip
    bare = events_pb2.DeliveryEvent(
        event_id="e2", delivery_id="d2", status=1, at=to_timestamp(NOW.timestamp())
    )
    error = events_pb2.ErrorClassified(
        event_id="x1", delivery_id="d1", message_id="m1", created=to_timestamp(at),
        status=events_pb2.ERROR_STATUS_OVER_CAPACITY, to="Taro@X.test",
        header_message_id="<h1@example.test>", return_path="bounce-d1@bounce.example.test",
        subject="s", api_data="{}", reason="552 5.2.2 full",
        source=events_pb2.ERROR_SOURCE_BOUNCE_MAIL, permanent=True, reply_code=552,
        enhanced_status="5.2.2", server="campaigns", api_user="app", trace_id="cd" * 16,
        **{"from": "app@example.test"},
    )  # fmt: skip
    written = await Ingest(store).write([raw(full), raw(bare), raw(error)])
    assert written == 3

    def rows(client: Any) -> Any:
        events = client.query(
            "SELECT * FROM postline.delivery_events ORDER BY event_id"
        ).named_results()
        errors = client.query("SELECT * FROM postline.error_log").named_results()
        return list(events), list(errors)

    (first, second), (row,) = await store.run(rows)
    assert first["status"] == "deferred" and second["status"] == "queued"
    millis = full.at.seconds * 1000 + full.at.nanos // 1_000_000
    assert round(first["at"].timestamp() * 1000) == millis
    assert first["next_attempt_at"].timestamp() == NOW.timestamp() + 600
    assert second["next_attempt_at"] is None and second["recipient"] == ""
    for name in (
        "delivery_id", "message_id", "server", "api_user", "envelope_from", "recipient",
        "recipient_domain", "subject", "api_data", "return_path", "header_message_id",
        "attempt", "reply_code", "enhanced_status", "reason", "mx_host", "source_ip",
        "error_status", "trace_id",
    ):  # fmt: skip
        assert first[name] == getattr(full, name), name
    assert row["envelope_from"] == "app@example.test" and row["recipient"] == "Taro@X.test"
    assert row["recipient_domain"] == "x.test"  # the table's default, from the recipient
    assert row["status"] == 5 and row["source"] == "bounce_mail" and row["permanent"] is True
    assert round(row["created"].timestamp() * 1000) == millis
    for name in (
        "delivery_id", "message_id", "header_message_id", "return_path", "subject", "api_data",
        "reason", "reply_code", "enhanced_status", "server", "api_user", "trace_id",
    ):  # fmt: skip
        assert row[name] == getattr(error, name), name


async def test_the_same_batch_written_twice_counts_once(store: Store) -> None:
    batch = [
        raw(events_pb2.DeliveryEvents(events=deliveries(30))),
        *(raw(e) for e in deliveries(5, prefix="single")),
        raw(events_pb2.ErrorEvents(events=errors(4))),
    ]
    ingest = Ingest(store)
    assert await ingest.write(batch) == 60 + 10 + 4
    assert await ingest.write(batch) == 74  # a retry: ClickHouse drops it
    assert await stored(store) == (70, 4, 70, 35)


def empty_the_merged_part(client: Any, table: str) -> str:
    """Merge the table into one part and empty its files, as a merge that ran while the disk
    was full left one (chdb, in the fault suite); returns the part's name."""
    client.command(f"OPTIMIZE TABLE {table} FINAL")
    database, _, name = table.partition(".")
    ((part, path),) = client.query(
        "SELECT name, path FROM system.parts WHERE database = {d:String} AND table = {t:String} "
        "AND active",
        parameters={"d": database, "t": name},
    ).result_rows
    for file in Path(path).iterdir():
        os.truncate(file, 0)
    return str(part)


async def test_an_insert_that_meets_a_broken_part_detaches_it_and_is_written(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ingest = Ingest(store)
    for prefix in "abc":
        await ingest.write([raw(events_pb2.DeliveryEvents(events=deliveries(10, prefix)))])
    await ingest.write([raw(events_pb2.ErrorEvents(events=errors(10)))])
    broken = {
        table: await store.run(lambda c, t=table: empty_the_merged_part(c, t))
        for table in ("postline.delivery_events", "postline.error_log")
    }
    metric = "postline_reports_broken_parts_detached_total"
    before = {t: REGISTRY.get_sample_value(metric, {"table": t}) or 0 for t in broken}
    # Later events of the same deliveries: the views' lookups read the broken parts.
    later = deliveries(10, "b")
    for event in later:
        event.event_id += "-later"
    batch = [
        raw(events_pb2.DeliveryEvents(events=later)),
        raw(events_pb2.ErrorEvents(events=errors(10, prefix="y"))),
    ]
    with caplog.at_level(logging.ERROR):
        assert await ingest.write(batch) == 30

    rows = await store.query(
        "SELECT database, table, name FROM system.detached_parts WHERE database = 'postline'", {}
    )
    assert {f"{r['database']}.{r['table']}": r["name"] for r in rows} == broken
    for table, part in broken.items():
        assert f"{table}: part {part} is broken" in caplog.text
        assert REGISTRY.get_sample_value(metric, {"table": table}) == before[table] + 1
        assert await store.run(lambda c, t=table: broken_parts(c, t)) == []
    # the broken parts' rows are gone with them; the new ones are written, once
    assert await ingest.write(batch) == 30
    assert (await stored(store))[:3] == (20, 10, 20)


async def test_a_broken_part_a_full_disk_keeps_is_detached_once_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not can_mount(tmp_path):
        pytest.skip("cannot mount a tmpfs here (root needed)")
    disk = Ballast(tmp_path / "ch", size="256m")
    disk.mount()
    store = Store(migrated(disk.path))
    try:
        ingest = Ingest(store)
        for prefix in "abc":
            await ingest.write([raw(events_pb2.DeliveryEvents(events=deliveries(10, prefix)))])
        part = await store.run(lambda c: empty_the_merged_part(c, "postline.delivery_events"))
        later = deliveries(10, "b")
        for event in later:
            event.event_id += "-later"
        batch = [raw(events_pb2.DeliveryEvents(events=later))]
        disk.fill()
        with caplog.at_level(logging.WARNING):
            # found, but DETACH PART wants room on the disk too
            with pytest.raises(Exception, match="CANNOT_READ_ALL_DATA"):
                await ingest.write(batch)
            disk.drain()
            assert await ingest.write(batch) == 20  # detached without a second CHECK TABLE
        assert f"part {part} is broken" in caplog.text and "not detached yet" in caplog.text
        assert caplog.text.count("failed reading stored data; checking") == 1
        rows = await store.query("SELECT name FROM system.detached_parts", {})
        assert [r["name"] for r in rows] == [part]
    finally:
        store.close()
        disk.unmount()


async def test_a_batch_with_what_no_row_can_be_made_of_writes_nothing(store: Store) -> None:
    ingest = Ingest(store)
    good = raw(events_pb2.DeliveryEvents(events=deliveries(3)))
    no_id = raw(events_pb2.DeliveryEvent(delivery_id="d", status=1, at=to_timestamp(1e9)))
    truncated = ("postline.v1.DeliveryEvents", good[1][:-3])
    unknown = ("postline.v1.Nothing", b"")
    no_error_id = raw(events_pb2.ErrorEvents(events=[events_pb2.ErrorClassified()]))
    try:
        await ingest.write([good, no_id, truncated, unknown, no_error_id])
    except PoisonEvents as poison:
        assert sorted(poison.reasons) == [2, 3]  # found before ClickHouse is asked
    try:
        await ingest.write([good, no_id, no_error_id])
    except PoisonEvents as poison:
        assert sorted(poison.reasons) == [1, 2]  # refused by ClickHouse, found here
        assert "event_id" in poison.reasons[1]
    assert await stored(store) == (0, 0, 0, 0)
    assert await ingest.write([good]) == 6


async def test_batch_messages_are_ingested_and_the_prefetch_follows_their_size(
    broker: Broker, store: Store
) -> None:
    consumer = BatchConsumer(
        broker, REPORTS_EVENTS, Ingest(store).write, max_events=1000, max_bytes=64 * 1024,
        max_wait=0.2,
    )  # fmt: skip
    assert consumer.prefetch == 16  # room for two batches of the largest messages
    await consumer.start()
    try:
        await broker.publish(
            DELIVERY_EVENT_KEY, events_pb2.DeliveryEvents(events=deliveries(200, prefix="b"))
        )
        await broker.publish(ERROR_EVENT_KEY, events_pb2.ErrorEvents(events=errors(7)))
        await publish(broker, [*deliveries(20, prefix="s"), *errors(3, prefix="y")])
        await all_written(broker, store, (440, 10, 440, 220))
        # Single events of ~150 bytes: far more of them fit in two batches' bytes.
        await apoll_until(lambda: _grown(consumer), "a larger prefetch", timeout=60)
    finally:
        await consumer.stop()


async def _grown(consumer: BatchConsumer) -> bool:
    return consumer.prefetch > 100


async def test_the_schema_can_travel_with_the_insert(store: Store) -> None:
    """Against a ClickHouse server the schema is sent with each insert (the embedded engine
    reads it from a file instead: it would cache a sent one in the working directory it
    started in, `__cache__`, ignored by git)."""
    ingest = Ingest(store)
    ingest.settings = {kind.table: kind.settings(None) for kind in KINDS}
    assert ingest.settings["postline.delivery_events_input"]["format_schema_source"] == "string"
    batch = [
        raw(events_pb2.DeliveryEvents(events=deliveries(2))),
        raw(events_pb2.ErrorEvents(events=errors(1))),
    ]
    assert await ingest.write(batch) == 5
    assert await stored(store) == (4, 1, 4, 2)


async def test_a_broker_restart_while_backing_off_does_not_stop_the_consumer(
    private_amqp_url: str, rabbit_node: RabbitNode
) -> None:
    """The consumer subscribes again after a failed write's pause; when RabbitMQ is down at
    that moment it tries again until it is back, rather than stopping for good."""
    broker = Broker(private_amqp_url, Topology(1), publish_timeout=30)
    await broker.connect()
    failing = True
    written: list[int] = []

    async def write(raws: Any) -> int:
        if failing:
            raise RuntimeError("ClickHouse is away")
        written.append(len(raws))
        return len(raws)

    consumer = BatchConsumer(
        broker, REPORTS_EVENTS, write, max_wait=0.1, retry_for=0.1,
        backoff=Backoff(first=6.0, maximum=6.0),
    )  # fmt: skip
    await consumer.start()
    try:
        events = deliveries(5)
        await publish(broker, events)
        # The second failure hands the events back; the consumer subscribes again in 6 s.
        await apoll_until(lambda: _failing(consumer), "the events handed back", timeout=30)
        await asyncio.to_thread(rabbit_node.stop_app)
        await asyncio.sleep(8)
        failing = False
        await asyncio.to_thread(rabbit_node.start_app)
        await apoll_until(lambda: sum(written) == len(events), "the events written", timeout=60)
        assert consumer.problem() is None
    finally:
        await consumer.stop()
        await broker.close()
