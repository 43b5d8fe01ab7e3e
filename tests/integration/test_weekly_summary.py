"""The weekly summary against the real RabbitMQ and embedded ClickHouse: a seeded week gives
the right counts, the mail is published as accepted deliveries the scheduler takes (to each
address), it goes once per week across restarts, a summary more than a day late is skipped,
and of several replicas one sends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import inbound_queue, shard_for
from postline.common.ids import new_id
from postline.common.policy import Policy, parse_policy
from postline.common.timeutil import to_timestamp
from postline.reports.ingest import Ingest
from postline.reports.store import Store
from postline.reports.summary.runner import WeeklySummaries
from postline.reports.summary.schedule import latest_due, week_before
from postline.v1 import delivery_pb2, events_pb2
from tests.events_support import deliveries_in
from tests.polling import poll_until

SHARDS = 2
Q, DEF, OK, FAIL = (
    events_pb2.DELIVERY_STATUS_QUEUED,
    events_pb2.DELIVERY_STATUS_DEFERRED,
    events_pb2.DELIVERY_STATUS_SUCCEEDED,
    events_pb2.DELIVERY_STATUS_FAILED,
)

POLICY = """
version: 1
servers:
  default:
    return_path_domain: bounce.example.test
    notices: {{from: reports@bounce.example.test}}
    weekly_summary:
      to: [ops@example.test, lead@example.test]
      day: {day}
      time: "09:00"
      timezone: Asia/Tokyo
  other:
    return_path_domain: bounce.other.test
    weekly_summary: {{to: [ops@other.test], day: {other_day}, time: "09:00", timezone: Asia/Tokyo}}
"""


def summary_policy(other_day: str = "fri", day: str = "mon") -> Policy:
    return parse_policy(POLICY.format(other_day=other_day, day=day))


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(amqp_url, Topology(SHARDS))
    await broker.connect()
    yield broker
    await broker.close()


def delivery(status: int, at: datetime, domain: str, server: str = "default") -> Any:
    return events_pb2.DeliveryEvent(
        event_id=new_id(),
        delivery_id=new_id(),
        message_id=new_id(),
        status=status,  # type: ignore[arg-type]
        at=to_timestamp(at.timestamp()),
        accepted_at=to_timestamp(at.timestamp()),
        server=server,
        api_user="dev",
        envelope_from="app@example.test",
        recipient=f"someone@{domain}",
        recipient_domain=domain,
        subject="hello",
    )


def error(status: int, at: datetime, domain: str) -> events_pb2.ErrorClassified:
    return events_pb2.ErrorClassified(
        event_id=new_id(),
        delivery_id=new_id(),
        created=to_timestamp(at.timestamp()),
        status=status,  # type: ignore[arg-type]
        to=f"someone@{domain}",
        source=events_pb2.ERROR_SOURCE_SMTP_REPLY,
        permanent=True,
        server="default",
        api_user="dev",
    )


def many(count: int, make: Any, *args: Any) -> list[Any]:
    return [make(*args) for _ in range(count)]


async def seed(store: Store, due: datetime) -> None:
    """This week: a.test 30 accepted, 3 deferrals, 25 succeeded, 5 failed; b.test 12
    accepted, 2 succeeded, 10 failed; errors 5 x status 2, 10 x status 4. The week before:
    a.test 10 accepted, 10 succeeded, one status 5. Around them: another server's events, and
    events just outside the weeks."""
    summary = summary_policy().servers["default"].weekly_summary
    assert summary is not None
    this = week_before(summary, due).start + timedelta(hours=30)
    before = week_before(summary, due, 2).start + timedelta(hours=5)
    events: list[Any] = [
        *many(30, delivery, Q, this, "a.test"),
        *many(3, delivery, DEF, this, "a.test"),
        *many(25, delivery, OK, this, "a.test"),
        *many(5, delivery, FAIL, this, "a.test"),
        *many(12, delivery, Q, this, "b.test"),
        *many(2, delivery, OK, this, "b.test"),
        *many(10, delivery, FAIL, this, "b.test"),
        *many(5, error, 2, this, "a.test"),
        *many(10, error, 4, this, "b.test"),
        *many(10, delivery, Q, before, "a.test"),
        *many(10, delivery, OK, before, "a.test"),
        error(5, before, "a.test"),
        *many(7, delivery, Q, this, "a.test", "other"),
        *many(4, delivery, Q, due + timedelta(minutes=1), "a.test"),  # after the week
        *many(4, delivery, Q, week_before(summary, due, 3).end - timedelta(hours=2), "c.test"),
    ]
    raws = [(e.DESCRIPTOR.full_name, e.SerializeToString()) for e in events]
    assert await Ingest(store).write(raws) == len(events)


async def accepted_deliveries(
    broker: Broker, recipient_domain: str, count: int, timeout: float = 30.0
) -> list[delivery_pb2.AcceptedDelivery]:
    queue_name = inbound_queue(shard_for(recipient_domain, SHARDS))
    channel = await broker.connection.channel()
    queue = await channel.get_queue(queue_name, ensure=False)
    found: list[delivery_pb2.AcceptedDelivery] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        found.extend(deliveries_in(message.body, message.headers))  # alone or batched
    await channel.close()
    return found


def text_of(content: bytes) -> tuple[EmailMessage, str, str]:
    message = message_from_bytes(content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return message, text.get_content(), html.get_content()


async def test_a_seeded_week_gives_the_right_counts_sent_through_postline(
    store: Store, broker: Broker
) -> None:
    summary = summary_policy().servers["default"].weekly_summary
    assert summary is not None
    due = latest_due(summary, datetime.now(UTC))
    await seed(store, due)
    runner = WeeklySummaries(broker, store, summary_policy())
    run_at = (due + timedelta(minutes=10)).timestamp()

    [sent] = await runner.send_due(run_at)  # "other" is due on Friday: 3 days late, skipped

    assert sent.server == "default" and sent.due == due
    assert sent.this_week.deliveries == {"queued": 42, "deferred": 3, "succeeded": 27, "failed": 15}
    assert sent.previous_week.deliveries == {
        "queued": 10,
        "deferred": 0,
        "succeeded": 10,
        "failed": 0,
    }
    assert sent.this_week.errors == {2: 5, 4: 10}
    assert sent.previous_week.errors == {5: 1}
    assert [d.domain for d in sent.this_week.top_domains()] == ["a.test", "b.test"]
    worst = sent.this_week.worst_domains()
    assert [(d.domain, d.failed, d.finished) for d in worst] == [
        ("b.test", 10, 12),
        ("a.test", 5, 30),
    ]

    # Published as accepted deliveries, one per address, as ingress does.
    got = await accepted_deliveries(broker, "example.test", 2)
    assert sorted(d.recipient for d in got) == ["lead@example.test", "ops@example.test"]
    assert sorted(d.delivery_id for d in got) == sorted(sent.delivery_ids)
    first = got[0]
    assert (first.server, first.envelope_from) == ("default", "reports@bounce.example.test")
    assert first.header_message_id == sent.message_id
    message, text, html = text_of(first.content)
    assert (
        message["Subject"]
        == first.subject
        == (
            f"Postline weekly summary: default, {sent.this_week.week.first_day} to "
            f"{sent.this_week.week.last_day}"
        )
    )
    assert message["From"] == "Postline <reports@bounce.example.test>"
    lines = [line.split() for line in text.splitlines()]
    assert ["accepted", "42", "10", "+320.0%"] in lines
    assert ["failed", "15", "0", "new"] in lines
    assert ["4", "Receipt", "rejection", "10", "0", "new"] in lines
    assert ["b.test", "83.3%", "10", "12", "–"] in lines
    assert "<td>a.test</td>" in html

    # Once per week: neither a second look nor a restarted process sends it again.
    assert await runner.send_due(run_at + 60) == []
    assert await WeeklySummaries(broker, store, summary_policy()).send_due(run_at + 120) == []
    # (Nothing else was published: a short look shows it.)
    assert await accepted_deliveries(broker, "example.test", 1, timeout=2) == []


async def test_of_several_replicas_one_sends(store: Store, broker: Broker, amqp_url: str) -> None:
    # Both servers' summaries due three days ago: too late to send, so the replicas only elect.
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(datetime.now(UTC).weekday() - 3) % 7]
    second = Broker(amqp_url, Topology(SHARDS))
    await second.connect()
    replicas = [
        WeeklySummaries(b, store, summary_policy(day, day), check_seconds=0.2, token_seconds=0.2)
        for b in (broker, second)
    ]
    try:
        for replica in replicas:
            await replica.start()
        await asyncio.to_thread(
            poll_until, lambda: any(r.leader for r in replicas), "a sending replica"
        )
        await asyncio.sleep(1.0)  # several tokens later, still one
        [leader] = [r for r in replicas if r.leader]
        [standby] = [r for r in replicas if r is not leader]
        await leader.stop()
        await asyncio.to_thread(poll_until, lambda: standby.leader, "the standby taking over")
        assert not leader.leader
    finally:
        for replica in replicas:
            await replica.stop()
        await second.close()
    rows = await store.query("SELECT count() AS n FROM postline.weekly_summaries", {})
    assert rows == [{"n": 0}]
