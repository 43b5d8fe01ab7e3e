"""Every service's link to RabbitMQ recovers by itself: after a broker restart and after a
lost connection, consumers are subscribed again, publishing resumes (events too), and the
readiness probe says 503 with the reason meanwhile.

The broker restarted here is a private node (``rabbit_node``), never the shared one.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from postline.common.broker import Broker, Topology
from postline.common.broker import connection as broker_connection
from postline.common.broker.consumer import MessageMeta
from postline.common.broker.topology import SENDER_TASKS, TASK_KEY
from postline.common.health import Readiness
from postline.common.runtime import HttpServer, serve_health
from postline.v1 import delivery_pb2, events_pb2
from tests.polling import apoll_until
from tests.ports import free_port
from tests.rabbitmq_node import RabbitNode
from tests.tcp_relay import TcpRelay

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


@pytest_asyncio.fixture
async def relay(private_amqp_url: str) -> AsyncIterator[TcpRelay]:
    """A relay in front of the private node (see ``tests/tcp_relay.py``)."""
    port = urllib.parse.urlsplit(private_amqp_url).port
    assert port is not None
    relay = TcpRelay("127.0.0.1", port)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


def through(relay: TcpRelay, url: str, query: str = "") -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{relay.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


async def test_a_reconnect_the_broker_never_answers_is_made_again(
    relay: TcpRelay, private_amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker that takes the connection and says nothing (one stopping or starting) does
    not keep the service from reconnecting: the attempt is given up and made again."""
    monkeypatch.setattr(broker_connection, "CONNECT_SECONDS", 2.0)
    broker = Broker(through(relay, private_amqp_url), Topology(2), publish_timeout=30)
    await broker.connect()
    consumed = Consumed()
    await broker.consume(SENDER_TASKS, delivery_pb2.DeliveryTask, consumed.on_task)
    try:
        relay.go_silent()
        relay.cut()
        await apoll_until(lambda: broker.problem, "the lost connection to show")
        # Attempts meanwhile are taken and never answered; without a limit the first would
        # wait for ever.
        await asyncio.sleep(2 * broker_connection.CONNECT_SECONDS + 1)
        assert broker.problem
        relay.forward()
        await apoll_until(lambda: broker.ready, "connected again", timeout=20)
        await broker.publish(TASK_KEY, task("after"))
        await apoll_until(lambda: "after" in consumed.tasks, "a task consumed again")
    finally:
        await broker.close()


async def test_a_broker_gone_silent_is_noticed_by_the_heartbeat(
    relay: TcpRelay, private_amqp_url: str
) -> None:
    """A broker gone without a word (its host lost, a network cut: no close reaches the
    service) is noticed after missed heartbeats, here the URL's 1 s, and connected to again."""
    url = through(relay, private_amqp_url, "heartbeat=1")
    broker = Broker(url, Topology(2), publish_timeout=30)
    await broker.connect()
    try:
        await apoll_until(lambda: broker.ready, "ready")
        relay.go_silent()
        problem = await apoll_until(lambda: broker.problem, "the silence noticed", timeout=20)
        assert "connection to RabbitMQ lost" in problem
        relay.forward()
        await apoll_until(lambda: broker.ready, "connected again", timeout=20)
        await broker.publish(TASK_KEY, task("after"))
    finally:
        await broker.close()


def test_connections_get_a_heartbeat_and_a_time_limit_unless_the_url_sets_them() -> None:
    options = broker_connection.connection_options("amqp://guest:guest@127.0.0.1:5672/v")
    assert options == {
        "timeout": broker_connection.CONNECT_SECONDS,
        "heartbeat": broker_connection.HEARTBEAT_SECONDS,
    }
    assert broker_connection.connection_options("amqp://h:5672/v?heartbeat=5") == {
        "timeout": broker_connection.CONNECT_SECONDS
    }


async def test_close_ends_even_when_the_watchdog_loses_its_cancel(amqp_url: str) -> None:
    """Python 3.11's wait_for drops a cancel that lands as its wait completes: the watchdog
    then goes on, and close() waited for it for ever (a service that never stopped)."""
    broker = Broker(amqp_url, Topology(1))
    await broker.connect()
    checking = asyncio.Event()
    lost = False

    async def a_check_that_loses_a_cancel() -> str | None:
        nonlocal lost
        checking.set()
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            lost = True  # as wait_for does when its inner wait has just completed
        return None

    broker._find_problem = a_check_that_loses_a_cancel  # type: ignore[method-assign]
    checking.clear()
    await asyncio.wait_for(checking.wait(), 5)  # close while the watchdog is in its check
    await asyncio.wait_for(broker.close(), 15)
    assert lost
