"""Every service's link to RabbitMQ recovers by itself: after a broker restart and after a
lost connection, consumers are subscribed again, publishing resumes (events too), and the
readiness probe says 503 with the reason meanwhile.

The broker restarted here is a private node (``rabbit_node``), never the shared one.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_asyncio

from postline.common.broker import Broker, Topology
from postline.common.broker.consumer import MessageMeta
from postline.common.broker.topology import SENDER_TASKS, TASK_KEY
from postline.common.health import Readiness
from postline.common.runtime import HttpServer, serve_health
from postline.v1 import delivery_pb2, events_pb2
from tests.polling import apoll_until
from tests.ports import free_port
from tests.rabbitmq_node import RabbitNode

SUPPRESSION_KEY = "suppression.change"


def task(delivery_id: str) -> delivery_pb2.DeliveryTask:
    return delivery_pb2.DeliveryTask(
        delivery=delivery_pb2.AcceptedDelivery(delivery_id=delivery_id)
    )


@dataclass
class Consumed:
    tasks: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    async def on_task(self, message: delivery_pb2.DeliveryTask, meta: MessageMeta) -> None:
        self.tasks.append(message.delivery.delivery_id)

    async def on_change(self, message: events_pb2.SuppressionChange, meta: MessageMeta) -> None:
        self.changes.append(message.address)


@dataclass
class Service:
    """What a service holds of RabbitMQ: a shared queue's consumer, an exclusive queue of its
    own (as each scheduler replica has), the publisher, and its probes."""

    broker: Broker
    consumed: Consumed
    probes: HttpServer
    port: int

    def readyz(self) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


@pytest_asyncio.fixture
async def service(private_amqp_url: str) -> AsyncIterator[Service]:
    broker = Broker(private_amqp_url, Topology(2), publish_timeout=30)
    await broker.connect()
    consumed = Consumed()
    await broker.consume(SENDER_TASKS, delivery_pb2.DeliveryTask, consumed.on_task)
    await broker.consume_queue(
        broker.topology.declare_suppression_queue,
        events_pb2.SuppressionChange,
        consumed.on_change,
    )
    readiness = Readiness()
    readiness.add("rabbitmq", lambda: broker.problem)
    port = free_port()
    probes = await serve_health(f"127.0.0.1:{port}", readiness)
    try:
        yield Service(broker, consumed, probes, port)
    finally:
        await probes.stop()
        await broker.close()


async def everything_flows(service: Service, label: str) -> None:
    """A task published now is consumed; so is a broadcast, once the private queue is back
    (a broadcast sent before that is not for this replica: nothing queued it)."""
    await service.broker.publish(TASK_KEY, task(label))
    await apoll_until(lambda: label in service.consumed.tasks, f"task {label} consumed")

    async def broadcast() -> bool:
        change = events_pb2.SuppressionChange(address=label)
        await service.broker.publish(SUPPRESSION_KEY, change, mandatory=False)
        await asyncio.sleep(0.2)
        return label in service.consumed.changes

    await apoll_until(broadcast, f"change {label} consumed")


async def test_a_broker_restart_is_recovered(service: Service, rabbit_node: RabbitNode) -> None:
    await everything_flows(service, "before")
    assert await asyncio.to_thread(service.readyz) == (200, "ready\n")

    await asyncio.to_thread(rabbit_node.stop_app)
    await apoll_until(lambda: service.broker.problem, "the broker to notice")
    status, body = await asyncio.to_thread(service.readyz)
    assert status == 503
    assert "not ready: rabbitmq: connection to RabbitMQ lost" in body
    # Publishing while the broker is down waits for it (within the publish timeout).
    waiting_task = asyncio.create_task(service.broker.publish(TASK_KEY, task("during")))
    waiting_event = asyncio.create_task(
        service.broker.publish_event(events_pb2.DeliveryEvent(event_id="e1", delivery_id="d1"))
    )
    await asyncio.sleep(1)
    assert not waiting_task.done()

    await asyncio.to_thread(rabbit_node.start_app)
    await waiting_task
    await waiting_event
    await apoll_until(lambda: service.broker.ready, "the broker to be ready again")
    assert await asyncio.to_thread(service.readyz) == (200, "ready\n")
    await apoll_until(lambda: "during" in service.consumed.tasks, "the task sent while down")
    await everything_flows(service, "after")
    vhost = service.broker.url.rsplit("/", 1)[1]
    consumers = await asyncio.to_thread(rabbit_node.consumers, vhost)
    assert consumers[SENDER_TASKS] == 1  # subscribed again, and only once


async def test_a_lost_connection_is_recovered(service: Service, rabbit_node: RabbitNode) -> None:
    await everything_flows(service, "before")
    assert await asyncio.to_thread(rabbit_node.close_connections) >= 1
    await everything_flows(service, "after")
    await apoll_until(lambda: service.broker.ready, "the broker to be ready again")
    vhost = service.broker.url.rsplit("/", 1)[1]
    consumers = await asyncio.to_thread(rabbit_node.consumers, vhost)
    assert consumers[SENDER_TASKS] == 1


async def test_a_stopped_consumer_makes_the_service_unready(service: Service) -> None:
    await apoll_until(lambda: service.broker.ready, "ready")
    # The broker cancels a consumer whose queue is deleted (basic.cancel): no longer consuming.
    channel = await service.broker.connection.channel()
    await channel.queue_delete(SENDER_TASKS)
    problem = await apoll_until(lambda: service.broker.problem, "the lost consumer to show")
    assert problem == f"{SENDER_TASKS}: not consuming"
    assert (await asyncio.to_thread(service.readyz))[0] == 503


async def test_waiting_for_a_broker_at_start_ends_when_asked() -> None:
    port = free_port()  # nothing listens there
    broker = Broker(f"amqp://guest:guest@127.0.0.1:{port}/", Topology(1))
    stop = asyncio.Event()
    connecting = asyncio.create_task(broker.connect(until=stop))
    await asyncio.sleep(1.5)
    assert not connecting.done() and broker.problem == "not connected yet"
    stop.set()
    assert await connecting is False
