"""The scheduler in-process against the real RabbitMQ: what the scheduler tests share.

The test plays the senders' side of the contract over the broker (takes ``DeliveryTask`` from
``sender.tasks``, answers with ``DeliveryResult``), so it decides when each attempt ends and
can count exactly what the scheduler granted. Events are read from a queue of the test's own
bound to ``event.#``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import aio_pika

from postline.common.broker import Broker, Topology
from postline.common.broker.consumer import decode
from postline.common.broker.groups import unbatch
from postline.common.broker.topology import (
    EXCHANGE,
    SENDER_TASKS,
    accepted_key,
    result_key,
    shard_for,
)
from postline.common.ids import new_id
from postline.common.policy import load_policy
from postline.common.timeutil import to_timestamp
from postline.scheduler import queues
from postline.scheduler.service import SchedulerService
from postline.scheduler.settings import SchedulerSettings
from postline.v1 import delivery_pb2, events_pb2
from tests.events_support import events_in
from tests.polling import apoll_until

SHARDS = 2
T = TypeVar("T")

BASE_POLICY = """
version: 1
source_ip_pools:
  default: [127.0.0.1]
servers:
  default:
    return_path_domain: bounce.example.test
    source_ip_pool: default
    blocking: {{enabled: true}}
    speed:
      - match: ["*"]
        connections: 20
{speed}
    routes:
      - match: ["*.test"]
        to: 127.0.0.1:2600
{rest}
"""


def write_policy(tmp_path: Path, speed: str = "", rest: str = "") -> Path:
    """The base policy with extra speed rules (indented list items) and other server keys."""
    path = tmp_path / "postline.yaml"
    path.write_text(BASE_POLICY.format(speed=speed, rest=rest))
    load_policy(path)  # fail here, readably, on a bad test policy
    return path


class Clock:
    """Real time, shifted: waits stay real (timers, delay queues), decisions see the shift."""

    def __init__(self, at: float | None = None) -> None:
        self.offset = 0.0 if at is None else at - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    def shift(self, seconds: float) -> None:
        self.offset += seconds


async def steady(check: Callable[[], bool], what: str, seconds: float = 1.0) -> None:
    """``check`` stays true for ``seconds`` (what must *not* happen, did not)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        await asyncio.sleep(0.05)


def settings(amqp_url: str, policy: Path, **overrides: Any) -> SchedulerSettings:
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "policy": policy,
        "shards": SHARDS,
        "grpc_listen": "127.0.0.1:0",
        "bounce_grpc": "127.0.0.1:9",  # nothing there: the list stays "not loaded"
        "hold_release_spread": 0.0,
        **overrides,
    }
    return SchedulerSettings(**values)


@contextlib.asynccontextmanager
async def running(
    amqp_url: str, policy: Path, clock: Callable[[], float] = time.time, **overrides: Any
) -> AsyncIterator[SchedulerService]:
    service = SchedulerService(settings(amqp_url, policy, **overrides), load_policy(policy), clock)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def owns_all(service: SchedulerService) -> None:
    await apoll_until(lambda: len(service.ownership.runtimes) == SHARDS, "every shard owned")


class Senders:
    """The senders' side of the contract: tasks in, results out, decided by the test."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.tasks: list[delivery_pb2.DeliveryTask] = []
        self.pending: dict[str, delivery_pb2.DeliveryTask] = {}  # delivery id -> task
        self.messages: list[list[str]] = []  # the grants of each broker message received

    async def start(self) -> None:
        channel = await self.broker.connection.channel()
        await channel.set_qos(prefetch_count=10000)
        queue = await channel.get_queue(SENDER_TASKS, ensure=False)

        async def on_task(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            # Tasks granted together come as one message (a DeliveryTasks).
            message = decode(incoming.body, dict(incoming.headers or {}), delivery_pb2.DeliveryTask)
            items = unbatch(message)
            tasks = [item for item, _ in items] if items is not None else [message]
            self.messages.append([t.grant_id for t in tasks])  # type: ignore[attr-defined]
            for item in tasks:
                assert isinstance(item, delivery_pb2.DeliveryTask)
                self.tasks.append(item)
                self.pending[item.delivery.delivery_id] = item
            await incoming.ack()

        await queue.consume(on_task)

    def for_rcpt(self, recipient: str) -> list[delivery_pb2.DeliveryTask]:
        return [t for t in self.tasks if t.delivery.recipient == recipient]

    def in_flight(self, domain: str | None = None) -> int:
        return sum(
            1
            for t in self.pending.values()
            if domain is None or t.delivery.recipient_domain == domain
        )

    async def answer(
        self,
        task: delivery_pb2.DeliveryTask,
        outcome: int = delivery_pb2.OUTCOME_SUCCEEDED,
        code: int = 250,
        text: str = "2.0.0 Ok: queued",
    ) -> None:
        self.pending.pop(task.delivery.delivery_id, None)
        name = {1: "succeeded", 2: "deferred", 3: "failed"}[outcome]
        result = delivery_pb2.DeliveryResult(
            task=task,
            outcome=outcome,  # type: ignore[arg-type]
            reply_code=code,
            reply_text=text,
            enhanced_status=text.split(" ", 1)[0] if text[:1].isdigit() else "",
            mx_host=task.route_host,
            started_at=to_timestamp(time.time()),
            finished_at=to_timestamp(time.time()),
        )
        await self.broker.publish(result_key(task.shard, name), result)

    async def answer_all(self, domain: str | None = None, **kwargs: Any) -> int:
        chosen = [
            t
            for t in list(self.pending.values())
            if domain is None or t.delivery.recipient_domain == domain
        ]
        for task in chosen:
            await self.answer(task, **kwargs)
        return len(chosen)


class Events:
    """Every event the scheduler published, from a queue of the test's own."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.deliveries: list[events_pb2.DeliveryEvent] = []
        self.errors: list[events_pb2.ErrorClassified] = []

    async def start(self) -> None:
        channel = await self.broker.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(EXCHANGE, routing_key="event.#")

        async def on_event(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            for event in events_in(incoming.body, incoming.headers):
                if isinstance(event, events_pb2.DeliveryEvent):
                    self.deliveries.append(event)
                else:
                    self.errors.append(event)
            await incoming.ack()

        await queue.consume(on_event)

    def of(self, delivery_id: str, status: int | None = None) -> list[events_pb2.DeliveryEvent]:
        return [
            e
            for e in self.deliveries
            if e.delivery_id == delivery_id and (status is None or e.status == status)
        ]


@contextlib.asynccontextmanager
async def harness(amqp_url: str) -> AsyncIterator[tuple[Broker, Senders, Events]]:
    broker = Broker(amqp_url, Topology(SHARDS))
    await broker.connect()
    senders, events = Senders(broker), Events(broker)
    await senders.start()
    await events.start()
    try:
        yield broker, senders, events
    finally:
        await broker.close()


async def accept(
    broker: Broker,
    recipient: str,
    *,
    headers: dict[str, str] | None = None,
    server: str = "default",
    accepted_at: float | None = None,
) -> delivery_pb2.AcceptedDelivery:
    """What ingress publishes for one recipient."""
    domain = recipient.rsplit("@", 1)[1].lower()
    delivery = delivery_pb2.AcceptedDelivery(
        delivery_id=new_id(),
        message_id=new_id(),
        server=server,
        api_user="dev",
        envelope_from="app@example.test",
        recipient=recipient,
        recipient_domain=domain,
        content=b"Subject: hi\r\n\r\nHello.\r\n",
        headers=[delivery_pb2.Header(name=k, value=v) for k, v in (headers or {}).items()],
        subject="hi",
        accepted_at=to_timestamp(accepted_at if accepted_at is not None else time.time()),
    )
    await broker.publish(accepted_key(shard_for(domain, SHARDS)), delivery)
    return delivery


async def state_messages(broker: Broker, shard: int) -> int:
    """Messages in a shard's state queue (ready + held by its owner)."""
    channel = await broker.connection.channel()
    try:
        queue = await channel.declare_queue(queues.state_queue(shard), passive=True)
        ready = queue.declaration_result.message_count or 0
    finally:
        await channel.close()
    return ready


# Prohibited hours, retry profiles and forwarding rules of the scheduler's policy tests.
POLICY = """
    prohibited_hours:
      - header: X-Category
        pattern: "^campaign$"
        timezone: Asia/Tokyo
        days: [mon, tue, wed, thu, fri, sat, sun]
        windows: ["21:00-08:00"]
    retry:
      interval: 1s
      resend_period: 30s
      profiles:
        - {header: X-Category, pattern: "^bulk$", interval: 1s, resend_period: 3s}
    forwarding:
      - {header: Subject, pattern: "^Order confirmation", action: copy, to: archive@archive.test}
      - {header: To, pattern: "^archive@", action: copy, to: loop@a.test}
      - {header: To, pattern: "^old@", action: rewrite, to: new@moved.test}
"""
