"""The declared topology exists in the real RabbitMQ with its arguments, and routes as designed."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import aio_pika
import pytest

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import (
    BOUNCE_RESULTS,
    DEAD_LETTER_QUEUE,
    DELAY_BUCKETS,
    MAX_PRIORITY,
    REPORTS_EVENTS,
    SENDER_TASKS,
    QueueType,
    accepted_key,
    delay_bucket,
    delay_queue,
    inbound_queue,
    result_key,
    results_queue,
    shard_for,
)
from postline.v1 import delivery_pb2

SHARDS = 3


async def _declared_arguments(connection: aio_pika.abc.AbstractConnection, name: str) -> None:
    """Passive declare: raises if the queue does not exist."""
    channel = await connection.channel()
    await channel.declare_queue(name, passive=True)
    await channel.close()


async def test_every_queue_exists_with_its_arguments(amqp_url: str) -> None:
    broker = Broker(amqp_url, Topology(SHARDS))
    await broker.connect()
    try:
        for spec in Topology(SHARDS).queues():
            await _declared_arguments(broker.connection, spec.name)
            # Re-declaring with the same arguments succeeds; with other arguments RabbitMQ
            # answers PRECONDITION_FAILED, which proves the arguments are really set.
            channel = await broker.connection.channel()
            await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
            await channel.close()
            if spec.arguments:
                channel = await broker.connection.channel()
                with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                    await channel.declare_queue(spec.name, durable=True, arguments={})
        await _declared_arguments(broker.connection, DEAD_LETTER_QUEUE)
    finally:
        await broker.close()


def test_queue_arguments_are_as_designed() -> None:
    specs = {s.name: s for s in Topology(SHARDS).queues()}
    for k in range(SHARDS):
        assert specs[inbound_queue(k)].arguments["x-single-active-consumer"] is True
        assert specs[results_queue(k)].arguments["x-single-active-consumer"] is True
    assert specs[SENDER_TASKS].arguments["x-max-priority"] == MAX_PRIORITY
    for bucket in DELAY_BUCKETS:
        args = specs[delay_queue(bucket)].arguments
        assert args["x-message-ttl"] == bucket * 1000
        assert args["x-dead-letter-exchange"] == "postline"
    assert {BOUNCE_RESULTS, REPORTS_EVENTS} <= specs.keys()


def test_shards_are_stable_and_spread() -> None:
    assert shard_for("Example.TEST", 4) == shard_for("example.test", 4)
    assert len({shard_for(f"d{i}.test", 4) for i in range(100)}) == 4
    assert delay_bucket(0.2) == 1 and delay_bucket(70) == 60 and delay_bucket(10**6) == 3600


async def _get(
    broker: Broker, queue: str, timeout: float = 10.0
) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message of ``queue``, taken by a consumer as the services take them (a quorum
    queue with a single active consumer refuses basic.get)."""
    channel = await broker.connection.channel()
    await channel.set_qos(prefetch_count=1)
    q = await channel.get_queue(queue, ensure=False)
    arrived: asyncio.Future[aio_pika.abc.AbstractIncomingMessage] = (
        asyncio.get_running_loop().create_future()
    )

    async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if not arrived.done():
            await message.ack()
            arrived.set_result(message)

    tag = await q.consume(take)
    try:
        return await asyncio.wait_for(arrived, timeout)
    except TimeoutError:
        raise AssertionError(f"nothing arrived on {queue} within {timeout}s") from None
    finally:
        await q.cancel(tag)
        await channel.close()


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_routing_keys_reach_their_queues(amqp_url: str, queue_type: QueueType) -> None:
    broker = Broker(amqp_url, Topology(SHARDS, queue_type))
    await broker.connect()
    try:
        delivery = delivery_pb2.AcceptedDelivery(delivery_id="d1", recipient_domain="a.test")
        await broker.publish(accepted_key(2), delivery)
        got = await _get(broker, inbound_queue(2))
        assert delivery_pb2.AcceptedDelivery.FromString(got.body).delivery_id == "d1"
        assert got.headers["x-postline-type"] == "postline.v1.AcceptedDelivery"

        result = delivery_pb2.DeliveryResult(outcome=delivery_pb2.OUTCOME_FAILED)
        await broker.publish(result_key(1, "failed"), result)
        await _get(broker, results_queue(1))
        await _get(broker, BOUNCE_RESULTS)  # failures are copied to bounce

        await broker.publish("task", delivery_pb2.DeliveryTask(attempt=1), priority=3)
        task = await _get(broker, SENDER_TASKS)
        assert task.priority == 3
        assert task.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    finally:
        await broker.close()


async def test_priority_queue_serves_high_before_low(amqp_url: str) -> None:
    broker = Broker(amqp_url, Topology(1))
    await broker.connect()
    try:
        for i in range(5):
            await broker.publish("task", delivery_pb2.DeliveryTask(attempt=i), priority=1)
        await broker.publish("task", delivery_pb2.DeliveryTask(attempt=99), priority=3)
        first = await _get(broker, SENDER_TASKS)
        assert delivery_pb2.DeliveryTask.FromString(first.body).attempt == 99
    finally:
        await broker.close()


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_delayed_message_comes_back_to_its_queue(
    amqp_url: str, queue_type: QueueType
) -> None:
    broker = Broker(amqp_url, Topology(1, queue_type))
    await broker.connect()
    try:
        loop = asyncio.get_running_loop()
        now = loop.time()
        result = delivery_pb2.DeliveryResult(reply_code=451)
        bucket = await broker.publish_delayed(
            result_key(0, "deferred"), result, not_before=1000.5, now=1000.0
        )
        assert bucket == 1
        back = await _get(broker, results_queue(0), timeout=10)
        assert loop.time() - now >= 0.9  # it waited the bucket's TTL
        assert float(back.headers["x-postline-not-before"]) == 1000.5
        assert delivery_pb2.DeliveryResult.FromString(back.body).reply_code == 451
    finally:
        await broker.close()


def _broker_queues(amqp_url: str) -> dict[str, dict[str, Any]]:
    """What RabbitMQ itself reports of the vhost's queues: name -> {type, arguments}."""
    vhost = amqp_url.rsplit("/", 1)[1]
    command = ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--formatter", "json"]
    listed = subprocess.run(
        [*command, "name", "type", "arguments"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {q["name"]: q for q in json.loads(listed.stdout)}


def _listed_arguments(queue: dict[str, Any]) -> dict[str, Any]:
    # rabbitmqctl lists a queue's arguments as [name, AMQP type, value] triples.
    return {name: value for name, _, value in queue["arguments"]}


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_queue_type_setting_declares_what_it_says(
    amqp_url: str, queue_type: QueueType
) -> None:
    topology = Topology(SHARDS, queue_type)
    broker = Broker(amqp_url, topology)
    await broker.connect()
    await broker.close()
    declared = _broker_queues(amqp_url)
    specs = {spec.name: spec for spec in topology.queues()}
    assert specs.keys() <= declared.keys()
    for name, spec in specs.items():
        expected = "classic" if name == SENDER_TASKS else queue_type
        assert declared[name]["type"] == expected, f"{name} is {declared[name]['type']}"
        assert _listed_arguments(declared[name]) == spec.arguments
    assert declared[DEAD_LETTER_QUEUE]["type"] == queue_type
    # The priority queue keeps its priorities whatever the setting (quorum queues before
    # RabbitMQ 4.0 have none).
    assert _listed_arguments(declared[SENDER_TASKS])["x-max-priority"] == MAX_PRIORITY
    if queue_type == "quorum":
        for bucket in DELAY_BUCKETS:
            arguments = _listed_arguments(declared[delay_queue(bucket)])
            assert arguments["x-dead-letter-strategy"] == "at-least-once"
            assert arguments["x-overflow"] == "reject-publish"
        for k in range(SHARDS):
            assert _listed_arguments(declared[inbound_queue(k)])["x-single-active-consumer"]


async def test_services_must_agree_on_the_queue_type(amqp_url: str) -> None:
    """Queues keep the type they were declared with: a service configured otherwise fails
    at start-up instead of working on queues other than it was told."""
    quorum = Broker(amqp_url, Topology(1, "quorum"))
    await quorum.connect()
    await quorum.close()
    classic = Broker(amqp_url, Topology(1, "classic"))
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
        await classic.connect()
    await classic.close()


def test_an_unknown_queue_type_is_refused() -> None:
    with pytest.raises(ValueError, match="queue_type"):
        Topology(1, "mirrored")  # type: ignore[arg-type]
