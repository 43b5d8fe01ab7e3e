"""Deliveries and results by group commit against the real RabbitMQ: those published while a
publish is in flight share a broker message, a consumer gets each one as if it came alone (in
its own trace) and acks the message once all were handled, a failing item requeues the message,
and a lone one is the plain message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from postline.common.broker import Broker, Topology
from postline.common.broker.consumer import Delivery, message_type
from postline.common.broker.topology import accepted_key, inbound_queue
from postline.common.ids import new_id
from postline.common.telemetry import current_trace_id
from postline.v1 import delivery_pb2
from tests.conftest import poll_until

SHARD = 0


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(amqp_url, Topology(1), publish_timeout=5.0)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


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
    # The first went alone (the lane was idle); the rest waited for its confirm, together.
    assert types[0] == "postline.v1.AcceptedDelivery"
    assert "postline.v1.AcceptedDeliveries" in types
    assert len(types) < len(sent)

    handled: dict[str, str] = {}

    async def handle(item: delivery_pb2.AcceptedDelivery, meta: Delivery) -> None:
        handled[item.delivery_id] = current_trace_id()

    await broker.consume(inbound_queue(SHARD), delivery_pb2.AcceptedDelivery, handle)
    await asyncio.to_thread(poll_until, lambda: len(handled) == len(sent), "every one handled")
    assert all(traces.values())
    assert handled == traces  # each handled once, in the trace it was published in
    assert await _types_waiting(broker) == []  # every message acked


async def test_a_failing_item_requeues_its_whole_message(broker: Broker) -> None:
    sent = [delivery(i) for i in range(10)]
    await asyncio.gather(*(broker.publish_grouped(accepted_key(SHARD), d) for d in sent))
    seen: list[str] = []
    failed_once: set[str] = set()

    async def handle(item: delivery_pb2.AcceptedDelivery, meta: Delivery) -> None:
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
