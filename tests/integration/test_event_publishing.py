"""Group-commit publishing against the real RabbitMQ: events that arrive while a publish is in
flight travel together, every event arrives once, a lone event is the plain message, and a
waiter returns only after the confirm or gets ``BrokerUnavailable``. Deliveries and results
travel the same way (``publish_grouped``); a consumer gets each as if it came alone, in its own
trace, and a failing one requeues its whole message."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from postline.common.broker import Broker, BrokerUnavailable, EventPublisher, Topology
from postline.common.broker.consumer import MessageMeta, message_type
from postline.common.broker.topology import (
    BOUNCE_DELIVERIES,
    DELIVERY_EVENT_KEY,
    DELIVERY_OUTCOME_KEY,
    ERROR_EVENT_KEY,
    EXCHANGE,
    REPORTS_EVENTS,
    accepted_key,
    inbound_queue,
)
from postline.common.ids import new_id
from postline.common.telemetry import current_trace_id, sampled_parents
from postline.common.timeutil import to_timestamp
from postline.v1 import delivery_pb2, events_pb2
from tests.events_support import events_in
from tests.polling import poll_until


@dataclass(frozen=True)
class Published:
    """One broker message as it sits in a queue: its type header and the events it carries."""

    type_name: str
    routing_key: str
    events: list[events_pb2.DeliveryEvent | events_pb2.ErrorClassified]


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(amqp_url, Topology(1), publish_timeout=5.0)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


def delivery_event(
    recipient: str = "someone@a.test",
    status: events_pb2.DeliveryStatus.ValueType = events_pb2.DELIVERY_STATUS_QUEUED,
) -> events_pb2.DeliveryEvent:
    now = to_timestamp(time.time())
    return events_pb2.DeliveryEvent(
        event_id=new_id(),
        delivery_id=new_id(),
        message_id=new_id(),
        status=status,
        at=now,
        accepted_at=now,
        server="default",
        recipient=recipient,
        recipient_domain=recipient.rpartition("@")[2],
    )


def error_event(recipient: str = "someone@a.test") -> events_pb2.ErrorClassified:
    return events_pb2.ErrorClassified(
        event_id=new_id(),
        delivery_id=new_id(),
        created=to_timestamp(time.time()),
        status=events_pb2.ERROR_STATUS_UNKNOWN_USER,
        to=recipient,
        reason="550 5.1.1 user unknown",
    )


async def take(broker: Broker, queue_name: str) -> list[Published]:
    """Every message waiting in ``queue_name`` (confirmed publishes are already there)."""
    channel = await broker.connection.channel()
    found = []
    try:
        queue = await channel.get_queue(queue_name, ensure=False)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            raw = (message.headers or {}).get("x-postline-type")
            type_name = raw.decode() if isinstance(raw, bytes) else str(raw)
            events = events_in(message.body, message.headers)
            found.append(Published(type_name, message.routing_key or "", events))
    finally:
        await channel.close()
    return found


def event_ids(messages: list[Published]) -> Counter[str]:
    return Counter(e.event_id for m in messages for e in m.events)


async def test_concurrent_events_travel_together_and_each_arrives_once(broker: Broker) -> None:
    events = [delivery_event(f"user{i}@a.test") for i in range(2000)]

    await asyncio.gather(*(broker.publish_event(e) for e in events))

    for queue_name in (REPORTS_EVENTS, BOUNCE_DELIVERIES):
        messages = await take(broker, queue_name)
        assert event_ids(messages) == Counter(e.event_id for e in events)
        assert len(messages) < len(events) / 10, "events while a publish was in flight waited"
        for m in messages:
            assert m.routing_key == DELIVERY_EVENT_KEY
            expected = (
                "postline.v1.DeliveryEvents" if len(m.events) > 1 else "postline.v1.DeliveryEvent"
            )
            assert m.type_name == expected
        # Published in one pass of the event loop, they went together from the first (not
        # the first alone because the lane was idle), in order.
        first = messages[0].events
        assert len(first) > 1 and first == events[: len(first)]


async def test_a_deliverys_later_events_reach_reports_and_not_bounce(broker: Broker) -> None:
    queued = [delivery_event(f"user{i}@a.test") for i in range(3)]
    later = [
        delivery_event(f"user{i}@a.test", status)
        for i, status in enumerate(
            (
                events_pb2.DELIVERY_STATUS_DEFERRED,
                events_pb2.DELIVERY_STATUS_SUCCEEDED,
                events_pb2.DELIVERY_STATUS_FAILED,
            )
        )
    ]

    await broker.publish_events([*queued, *later])

    everything = await take(broker, REPORTS_EVENTS)
    assert event_ids(everything) == Counter(e.event_id for e in [*queued, *later])
    keys = {m.routing_key: [e.status for e in m.events] for m in everything}
    assert keys == {
        DELIVERY_EVENT_KEY: [events_pb2.DELIVERY_STATUS_QUEUED] * 3,
        DELIVERY_OUTCOME_KEY: [e.status for e in later],
    }
    # Bounce keeps its record of a delivery from the queued event alone.
    for_bounce = await take(broker, BOUNCE_DELIVERIES)
    assert event_ids(for_bounce) == Counter(e.event_id for e in queued)


async def test_a_lone_event_is_the_plain_message(broker: Broker) -> None:
    event = delivery_event()

    await broker.publish_event(event)

    [message] = await take(broker, REPORTS_EVENTS)
    assert message.type_name == "postline.v1.DeliveryEvent"
    assert message.events == [event]


async def test_batches_keep_to_the_event_and_byte_caps(broker: Broker) -> None:
    by_count = EventPublisher(broker.publish, max_events=50)
    events = [delivery_event(f"user{i}@a.test") for i in range(500)]
    await asyncio.gather(*(by_count.publish(e) for e in events))
    messages = await take(broker, REPORTS_EVENTS)
    assert event_ids(messages) == Counter(e.event_id for e in events)
    assert max(len(m.events) for m in messages) == 50

    size = events[0].ByteSize() + 6
    by_bytes = EventPublisher(broker.publish, max_bytes=5 * size)
    await by_bytes.publish_many(events)
    messages = await take(broker, REPORTS_EVENTS)
    assert event_ids(messages) == Counter(e.event_id for e in events)
    assert max(len(m.events) for m in messages) <= 5


async def test_error_events_go_to_event_error(broker: Broker) -> None:
    channel = await broker.connection.channel()
    errors_only = await channel.declare_queue("test.errors")
    await errors_only.bind(EXCHANGE, routing_key=ERROR_EVENT_KEY)
    errors = [error_event(f"user{i}@a.test") for i in range(3)]
    delivery = delivery_event()

    await broker.publish_events([*errors, delivery])

    messages = await take(broker, errors_only.name)
    assert event_ids(messages) == Counter(e.event_id for e in errors)
    # Given together, the errors travelled together, as ErrorEvents on event.error.
    [message] = messages
    assert (message.type_name, message.routing_key) == ("postline.v1.ErrorEvents", ERROR_EVENT_KEY)
    everything = await take(broker, REPORTS_EVENTS)
    assert event_ids(everything) == Counter(e.event_id for e in [*errors, delivery])
    await channel.close()


async def test_every_waiter_of_an_unroutable_batch_gets_broker_unavailable(
    broker: Broker, amqp_url: str
) -> None:
    # Nothing bound to event.delivery: a mandatory publish comes back instead of a plain ack.
    channel = await broker.connection.channel()
    bounce = await channel.get_queue(BOUNCE_DELIVERIES, ensure=False)
    await bounce.unbind(EXCHANGE, routing_key=DELIVERY_EVENT_KEY)
    reports = await channel.get_queue(REPORTS_EVENTS, ensure=False)
    await reports.bind(EXCHANGE, routing_key=ERROR_EVENT_KEY)
    await reports.unbind(EXCHANGE, routing_key="event.#")
    await channel.close()

    outcomes = await asyncio.gather(
        *(broker.publish_event(delivery_event()) for _ in range(300)), return_exceptions=True
    )
    assert all(isinstance(o, BrokerUnavailable) for o in outcomes), Counter(map(type, outcomes))
    with pytest.raises(BrokerUnavailable):
        await broker.publish_events([delivery_event(), delivery_event()])
    # Errors are still routed: one lane failing leaves the other alone.
    await broker.publish_event(error_event())


async def test_without_a_connection_every_waiter_gets_broker_unavailable(amqp_url: str) -> None:
    never_connected = Broker(amqp_url, Topology(1))
    outcomes = await asyncio.gather(
        *(never_connected.publish_event(delivery_event()) for _ in range(10)),
        return_exceptions=True,
    )
    assert all(isinstance(o, BrokerUnavailable) for o in outcomes)

    lost = Broker(amqp_url, Topology(1), publish_timeout=2.0)
    await lost.connect()
    await lost.connection.close()
    outcomes = await asyncio.gather(
        *(lost.publish_event(delivery_event()) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, BrokerUnavailable) for o in outcomes)
    await lost.close()


@pytest.mark.parametrize("grace", [5.0, 0.0], ids=["time-to-publish", "no-time"])
async def test_closing_publishes_or_fails_every_waiter(amqp_url: str, grace: float) -> None:
    broker = Broker(amqp_url, Topology(1), publish_timeout=5.0)
    await broker.connect()
    events = [delivery_event(f"user{i}@a.test") for i in range(3000)]
    waiters = [asyncio.ensure_future(broker.publish_event(e)) for e in events]
    await asyncio.sleep(0)  # the first publish is on its way, the others wait for it

    broker.publish_timeout = grace  # how long close() lets waiting events be published
    await asyncio.wait_for(broker.close(), timeout=30)

    _, pending = await asyncio.wait(waiters, timeout=5)
    assert not pending, "a waiter still hangs after close"
    confirmed = {e.event_id for e, w in zip(events, waiters, strict=True) if w.exception() is None}
    refused = [w.exception() for w in waiters if w.exception() is not None]
    assert all(isinstance(exc, BrokerUnavailable) for exc in refused)
    if grace:
        assert not refused
    else:
        assert len(refused) >= len(events) - 1000  # only the first publish had started
    with pytest.raises(BrokerUnavailable):
        await broker.publish_event(delivery_event())

    # What was confirmed is in the queue.
    reader = Broker(amqp_url, Topology(1))
    await reader.connect()
    arrived = event_ids(await take(reader, REPORTS_EVENTS))
    await reader.close()
    assert confirmed <= set(arrived)
    assert all(n == 1 for n in arrived.values())


# -- deliveries and results (publish_grouped) --------------------------------------------------

SHARD = 0


def delivery(number: int) -> delivery_pb2.AcceptedDelivery:
    return delivery_pb2.AcceptedDelivery(
        delivery_id=new_id(),
        recipient=f"user{number}@a.test",
        recipient_domain="a.test",
        content=b"Subject: x\r\n\r\nHello.\r\n",
    )


async def _types_waiting(broker: Broker) -> list[str]:
    """The x-postline-type of every message waiting in the inbound queue (left there)."""
    channel = await broker.connection.channel()
    try:
        queue = await channel.get_queue(inbound_queue(SHARD), ensure=False)
        found = []
        while (message := await queue.get(fail=False)) is not None:
            found.append(message_type(message.headers or {}))
        return found
    finally:
        await channel.close()


async def test_deliveries_published_together_share_messages_and_come_out_one_by_one(
    broker: Broker,
) -> None:
    tracer = TracerProvider().get_tracer(__name__)  # recording spans, whatever is global
    sent = [delivery(i) for i in range(50)]
    traces: dict[str, str] = {}

    async def publish(d: delivery_pb2.AcceptedDelivery) -> None:
        with tracer.start_as_current_span("submit"):
            traces[d.delivery_id] = current_trace_id()
            await broker.publish_grouped(accepted_key(SHARD), d)

    await asyncio.gather(*(publish(d) for d in sent))
    types = await _types_waiting(broker)
    # Published in one pass of the event loop: together from the first, within the caps.
    assert types == ["postline.v1.AcceptedDeliveries"]

    handled: dict[str, str] = {}

    async def handle(item: delivery_pb2.AcceptedDelivery, meta: MessageMeta) -> None:
        handled[item.delivery_id] = current_trace_id()

    await broker.consume(inbound_queue(SHARD), delivery_pb2.AcceptedDelivery, handle)
    await asyncio.to_thread(poll_until, lambda: len(handled) == len(sent), "every one handled")
    assert all(traces.values())
    assert handled == traces  # each handled once, in the trace it was published in
    assert await _types_waiting(broker) == []  # every message acked


async def test_batched_events_carry_their_sampled_traces_in_a_header(broker: Broker) -> None:
    """Events publish batches without traceparents in the body (reports hands the body to
    ClickHouse as it is); the sampled traces of a batch's events travel in a header, so reports
    can record its insert in each trace. Unsampled contexts add nothing."""
    recording = TracerProvider().get_tracer(__name__)
    events = [delivery_event(f"user{i}@a.test") for i in range(20)]
    spans = {}

    async def publish(event: events_pb2.DeliveryEvent, sampled: bool) -> None:
        if not sampled:
            await broker.publish_event(event)
            return
        with recording.start_as_current_span("event") as span:
            spans[event.event_id] = span.get_span_context()
            await broker.publish_event(event)

    await asyncio.gather(*(publish(e, sampled=i % 2 == 0) for i, e in enumerate(events)))

    channel = await broker.connection.channel()
    carried: dict[str, list[trace.SpanContext]] = {}
    try:
        queue = await channel.get_queue(REPORTS_EVENTS, ensure=False)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            parents = sampled_parents(message.headers or {})
            for event in events_in(message.body, message.headers):
                carried[event.event_id] = parents
    finally:
        await channel.close()
    batched = [ids for ids in carried.values() if len(ids) > 1]
    assert batched, "some events travelled together"
    every_sampled = {c.span_id for parents in carried.values() for c in parents}
    assert every_sampled == {c.span_id for c in spans.values()}


async def test_a_failing_item_requeues_its_whole_message(broker: Broker) -> None:
    sent = [delivery(i) for i in range(10)]
    await asyncio.gather(*(broker.publish_grouped(accepted_key(SHARD), d) for d in sent))
    seen: list[str] = []
    failed_once: set[str] = set()

    async def handle(item: delivery_pb2.AcceptedDelivery, meta: MessageMeta) -> None:
        seen.append(item.delivery_id)
        if item.delivery_id == sent[-1].delivery_id and not failed_once:
            failed_once.add(item.delivery_id)
            raise RuntimeError("a dependency failed")

    await broker.consume(inbound_queue(SHARD), delivery_pb2.AcceptedDelivery, handle)
    await asyncio.to_thread(
        poll_until,
        lambda: seen.count(sent[-1].delivery_id) == 2,
        "the failed delivery handled again",
    )
    # Its batch-mates came back with it (at-least-once): nothing was lost.
    assert set(seen) == {d.delivery_id for d in sent}
    assert len(seen) > len(sent)
