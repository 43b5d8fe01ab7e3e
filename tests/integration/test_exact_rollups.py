"""Statistics count each event once, however often RabbitMQ delivers it (migration 0007).

The delivery and error logs always merged a redelivered event away; the rollups behind the
statistics counted it again when it came in another batch. Here an event comes twice in
different batches, twice in one batch, and — the case of the issue — again after reports lost
its connection between writing a batch and acking it (the connection is cut at exactly that
point, on a private RabbitMQ node).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import DELIVERY_EVENT_KEY, ERROR_EVENT_KEY, REPORTS_EVENTS
from postline.common.events import delivery_event
from postline.common.policy import load_policy
from postline.common.timeutil import to_timestamp
from postline.reports.batching import BatchConsumer
from postline.reports.ingest import DELIVERY, Ingest, Raw, envelope
from postline.reports.journal import Journal
from postline.reports.store import Store
from postline.scheduler.notice_mail import Action
from postline.scheduler.notices import Notices
from postline.v1 import delivery_pb2, events_pb2
from tests.events_support import RecordingBroker
from tests.integration.reports_support import deliveries, errors
from tests.polling import apoll_until
from tests.rabbitmq_node import RabbitNode

DEV_POLICY = Path(__file__).resolve().parents[2] / "postline.dev.yaml"
Event = events_pb2.DeliveryEvent | events_pb2.ErrorClassified


def raw(events: Sequence[Event]) -> list[Raw]:
    return [(type(e).DESCRIPTOR.full_name, e.SerializeToString()) for e in events]


async def counts(store: Store) -> dict[str, int]:
    def read(client: object) -> dict[str, int]:
        query = client.query  # type: ignore[attr-defined]
        row = query(
            "SELECT sum(queued), sum(succeeded), sum(failed), sum(deferred) "
            "FROM postline.stats_hourly"
        ).result_rows[0]
        return {
            "queued": int(row[0]),
            "succeeded": int(row[1]),
            "domains_queued": int(
                query("SELECT sum(queued) FROM postline.stats_domains_hourly").result_rows[0][0]
            ),
            "senders_queued": int(
                query("SELECT sum(queued) FROM postline.stats_senders_hourly").result_rows[0][0]
            ),
            "replies": int(
                query("SELECT sum(replies) FROM postline.stats_replies_hourly").result_rows[0][0]
            ),
            "errors": int(
                query("SELECT sum(errors) FROM postline.stats_errors_hourly").result_rows[0][0]
            ),
            "events": int(query("SELECT count() FROM postline.delivery_events").result_rows[0][0]),
            "error_rows": int(query("SELECT count() FROM postline.error_log").result_rows[0][0]),
            "log": int(query("SELECT count() FROM postline.delivery_log FINAL").result_rows[0][0]),
        }

    return await store.run(read)


def expected(deliveries_: int, errors_: int) -> dict[str, int]:
    # deliveries() makes a queued and a succeeded event (reply 250) per delivery
    return {
        "queued": deliveries_,
        "succeeded": deliveries_,
        "domains_queued": deliveries_,
        "senders_queued": deliveries_,
        "replies": deliveries_,
        "errors": errors_,
        "events": 2 * deliveries_,
        "error_rows": errors_,
        "log": deliveries_,
    }


async def test_an_event_in_two_batches_counts_once(store: Store) -> None:
    ingest = Ingest(store)
    first, later = deliveries(30), deliveries(10, prefix="n")
    await ingest.write(raw([*first, *errors(5)]))
    # redelivered in a batch with new events (a different batch: another insert token)
    await ingest.write(raw([*first[10:], *later, *errors(8)]))
    assert await counts(store) == expected(40, 8)


async def test_an_event_twice_in_one_batch_counts_once(store: Store) -> None:
    events = deliveries(20)
    await Ingest(store).write(raw([*events, *events[:7], *errors(3), *errors(3)]))
    assert await counts(store) == expected(20, 3)


async def test_the_same_event_made_twice_by_a_producer_counts_once(store: Store) -> None:
    # A service that handled its input twice makes the same event again: same stable id,
    # though built anew (another time stamp).
    events = deliveries(5)
    again = [events_pb2.DeliveryEvent() for _ in events]
    for copy, event in zip(again, events, strict=True):
        copy.CopyFrom(event)
        copy.at.seconds += 3
    await Ingest(store).write(raw(events))
    await Ingest(store).write(raw(again))
    assert await counts(store) == expected(5, 0)


@pytest_asyncio.fixture
async def broker(private_amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(private_amqp_url, Topology(1))
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


async def test_a_batch_redelivered_after_a_lost_connection_counts_once(
    broker: Broker, store: Store, rabbit_node: RabbitNode
) -> None:
    ingest = Ingest(store)
    cuts: list[int] = []

    async def write_then_lose_the_connection(raws: Sequence[Raw]) -> int:
        written = await ingest.write(raws)
        if not cuts:  # the first batch is written, then its ack is lost with the connection
            cuts.append(await asyncio.to_thread(rabbit_node.close_connections))
        return written

    consumer = BatchConsumer(
        broker, REPORTS_EVENTS, write_then_lose_the_connection, max_events=1000, max_wait=0.3
    )
    await consumer.start()
    try:
        for event in [*deliveries(50), *errors(10)]:
            key = (
                DELIVERY_EVENT_KEY
                if isinstance(event, events_pb2.DeliveryEvent)
                else (ERROR_EVENT_KEY)
            )
            await broker.publish(key, event)
        await apoll_until(lambda: cuts, "the first batch written and the connection cut")
        later = deliveries(10, prefix="later")
        for event in later:
            await broker.publish(DELIVERY_EVENT_KEY, event)

        async def all_stored() -> bool:
            return (await counts(store))["log"] == 60

        await apoll_until(all_stored, "every delivery stored", timeout=60)
        # The first batch was written again (130 events in all, and that batch's once more),
        # acked this time, and counted once.
        await apoll_until(lambda: consumer.written > 130, "the redelivered batch written")
        assert await counts(store) == expected(60, 10)
    finally:
        await consumer.stop()


def fail_rollups(store_client: object, failing: bool) -> None:
    """Make the hourly statistics of every insert fail (or stop that), as a full disk or a
    killed process can leave an insert half done (ClickHouse has no transaction over a table
    and the views it feeds): ``stats_hourly_mv`` made again, throwing while
    ``postline.test_fault`` holds a row."""
    command = store_client.command  # type: ignore[attr-defined]
    query = store_client.query  # type: ignore[attr-defined]
    command(
        "CREATE TABLE IF NOT EXISTS postline.test_fault (x UInt8) ENGINE = MergeTree ORDER BY x"
    )
    command("TRUNCATE TABLE postline.test_fault")
    if failing:
        command("INSERT INTO postline.test_fault VALUES (1)")
    select = query(
        "SELECT as_select FROM system.tables WHERE database = 'postline' "
        "AND name = 'stats_hourly_mv'"
    ).result_rows[0][0]
    if "test_fault" not in select:
        head, group_by = select.split(" GROUP BY ")
        fault = "throwIf((SELECT count() FROM postline.test_fault) > 0, 'a fault for the test')"
        command("DROP VIEW postline.stats_hourly_mv")
        command(
            "CREATE MATERIALIZED VIEW postline.stats_hourly_mv TO postline.stats_hourly AS "
            f"{head} WHERE {fault} = 0 GROUP BY {group_by}"
        )


async def test_a_batch_half_written_when_reports_died_counts_once(
    store: Store, tmp_path: Path
) -> None:
    events = deliveries(30)
    await store.run(lambda client: fail_rollups(client, failing=True))
    with pytest.raises(Exception, match="a fault for the test"):
        await Ingest(store, Journal(tmp_path / "journal")).write(raw(events[:40]))
    half = await counts(store)
    assert half["events"] == 40 and half["queued"] == 0, half  # stored, not counted
    # The process dies there; its successor gets the same events again in other batches.
    await store.run(lambda client: fail_rollups(client, failing=False))
    successor = Ingest(store, Journal(tmp_path / "journal"))
    await successor.write(raw(events[20:]))
    assert await counts(store) == expected(30, 0)
    assert not len(successor.journal or []), "the unfinished insert stayed in the journal"


async def test_an_unfinished_insert_clickhouse_refuses_does_not_block_ingest(
    store: Store, tmp_path: Path
) -> None:
    # Left by a process killed between a refused insert and finding the message at fault.
    refused = events_pb2.DeliveryEvent(delivery_id="d-refused")  # no event id, no status
    journal = Journal(tmp_path / "journal")
    journal.begin([(DELIVERY.table, envelope([(False, refused.SerializeToString())]))])
    ingest = Ingest(store, Journal(tmp_path / "journal"))
    assert await ingest.write(raw(deliveries(3))) == 6
    assert await counts(store) == expected(3, 0)
    assert not len(ingest.journal or [])


async def test_a_notice_made_again_after_a_crash_is_one_row(store: Store) -> None:
    # The scheduler published a failure notice and died before acking the result that caused
    # it; its successor made the notice again, seconds later, and delivered that one. The log
    # keys a row by (accepted, delivery id): a notice accepted when it was made again was a
    # second row, left queued, beside the one that succeeded (a long fault run had 8).
    broker = RecordingBroker()
    delivery = delivery_pb2.AcceptedDelivery(
        delivery_id="f" * 32,
        message_id="m" * 32,
        server="default",
        envelope_from="app@example.test",
        recipient="gone@x.test",
        recipient_domain="x.test",
        content=b"Subject: hello\r\n\r\nbody\r\n",
    )
    delivery.accepted_at.CopyFrom(to_timestamp(1_800_000_000.0))
    task = delivery_pb2.DeliveryTask(delivery=delivery, attempt=1)
    result = delivery_pb2.DeliveryResult(
        task=task, outcome=delivery_pb2.OUTCOME_FAILED, reply_code=550, enhanced_status="5.1.1"
    )
    result.finished_at.CopyFrom(to_timestamp(1_800_000_060.0))
    server = load_policy(DEV_POLICY).server("default")
    for made in (1_800_000_061.0, 1_800_000_075.0):
        assert await Notices(broker).send(server, Action.FAILED, task, result, made)  # type: ignore[arg-type]
    notice = broker.deliveries[-1]
    sent = delivery_event(notice, events_pb2.DELIVERY_STATUS_SUCCEEDED, 1_800_000_080.0)
    await Ingest(store).write(raw([*broker.events, sent]))

    def notice_rows(client: object) -> list[tuple[str, int]]:
        query = client.query  # type: ignore[attr-defined]
        return query(
            "SELECT status, (SELECT sum(queued) FROM postline.stats_hourly) "
            "FROM postline.delivery_log FINAL WHERE envelope_from = ''"
        ).result_rows

    assert await store.run(notice_rows) == [("succeeded", 1)]
