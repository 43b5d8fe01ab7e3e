"""The sender's task handler with tasks granted together (``sender/handlers.py``): a batch is
acked only once every result was confirmed, a batch that comes back is not delivered twice by
the same sender, and the deliveries at once stay within ``concurrency``.

The consumer's own dispatch (``consumer.handle``) runs the handler as it does for a broker
message; the deliverer and the broker are stand-ins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from postline.common.broker.consumer import MessageMeta, handle
from postline.common.broker.errors import BrokerUnavailable
from postline.sender import handlers
from postline.sender.handlers import Sender
from postline.v1 import delivery_pb2


def task(n: int) -> delivery_pb2.DeliveryTask:
    return delivery_pb2.DeliveryTask(
        delivery=delivery_pb2.AcceptedDelivery(delivery_id=f"d{n}", recipient_domain="x.test"),
        attempt=1,
        grant_id=f"g{n}",
    )


def batch(*numbers: int) -> delivery_pb2.DeliveryTasks:
    return delivery_pb2.DeliveryTasks(tasks=[task(n) for n in numbers])


def meta(redelivered: bool = False) -> MessageMeta:
    return MessageMeta("sender.tasks", {}, redelivered)


class Deliverer:
    def __init__(self) -> None:
        self.attempted: list[str] = []
        self.running = 0
        self.most = 0
        self.gate: asyncio.Event | None = None

    async def attempt(self, task: delivery_pb2.DeliveryTask) -> delivery_pb2.DeliveryResult:
        self.attempted.append(task.delivery.delivery_id)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.running -= 1
        result = delivery_pb2.DeliveryResult(
            outcome=delivery_pb2.OUTCOME_SUCCEEDED, reply_code=250, reply_text="2.0.0 Ok"
        )
        result.task.CopyFrom(task)
        return result


class Broker:
    """Confirms a result when the test says so (or refuses it)."""

    def __init__(self) -> None:
        self.confirms: dict[str, asyncio.Future[None]] = {}
        self.refuse: set[str] = set()
        self.confirmed: list[str] = []

    async def publish_grouped(self, routing_key: str, result: delivery_pb2.DeliveryResult) -> None:
        delivery_id = result.task.delivery.delivery_id
        if delivery_id in self.refuse:
            raise BrokerUnavailable("refused")
        future = self.confirms.setdefault(delivery_id, asyncio.get_running_loop().create_future())
        await future
        self.confirmed.append(delivery_id)

    def confirm(self, delivery_id: str) -> None:
        self.confirms.setdefault(delivery_id, asyncio.get_running_loop().create_future())
        self.confirms[delivery_id].set_result(None)


def sender_of(concurrency: int = 20) -> tuple[Sender, Deliverer, Broker]:
    deliverer, broker = Deliverer(), Broker()
    return Sender(broker, deliverer, concurrency), deliverer, broker  # type: ignore[arg-type]


async def settle_loop() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_batch_is_acked_only_once_every_result_was_confirmed() -> None:
    sender, deliverer, broker = sender_of()
    handled = asyncio.ensure_future(handle(sender.on_task, batch(1, 2, 3), meta()))
    await settle_loop()
    assert sorted(deliverer.attempted) == ["d1", "d2", "d3"], "delivered at once"
    broker.confirm("d1")
    broker.confirm("d3")
    await settle_loop()
    assert not handled.done(), "d2's result is not confirmed yet: no ack"
    broker.confirm("d2")
    await asyncio.wait_for(handled, 1)  # returns: the consumer acks now


async def test_a_lone_task_still_works() -> None:
    sender, deliverer, broker = sender_of()
    broker.confirm("d7")
    await asyncio.wait_for(handle(sender.on_task, task(7), meta()), 1)
    assert deliverer.attempted == ["d7"] and broker.confirmed == ["d7"]


async def test_a_batch_back_after_a_result_was_refused_delivers_only_that_one_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handlers, "PUBLISH_TRIES", 1)
    sender, deliverer, broker = sender_of()
    for n in (1, 3):
        broker.confirm(f"d{n}")
    broker.refuse.add("d2")
    with pytest.raises(BrokerUnavailable):
        await handle(sender.on_task, batch(1, 2, 3), meta())  # the consumer requeues it
    broker.refuse.clear()
    broker.confirm("d2")
    await handle(sender.on_task, batch(1, 2, 3), meta(redelivered=True))
    assert sorted(deliverer.attempted) == ["d1", "d2", "d2", "d3"]


async def test_deliveries_at_once_stay_within_concurrency() -> None:
    sender, deliverer, broker = sender_of(concurrency=2)
    deliverer.gate = asyncio.Event()
    for n in range(1, 7):
        broker.confirm(f"d{n}")
    handled: list[Any] = [
        asyncio.ensure_future(handle(sender.on_task, batch(1, 2, 3), meta())),
        asyncio.ensure_future(handle(sender.on_task, batch(4, 5, 6), meta())),
    ]
    await settle_loop()
    assert deliverer.running == 2
    deliverer.gate.set()
    await asyncio.wait_for(asyncio.gather(*handled), 1)
    assert deliverer.most == 2 and len(deliverer.attempted) == 6


async def test_a_task_waiting_for_a_slot_goes_highest_priority_first() -> None:
    sender, deliverer, broker = sender_of(concurrency=1)
    deliverer.gate = asyncio.Event()
    for n in range(1, 5):
        broker.confirm(f"d{n}")
    low = delivery_pb2.DeliveryTasks(tasks=[task(1), task(2), task(3)])
    for t in low.tasks:
        t.priority = delivery_pb2.PRIORITY_LOW
    urgent = task(4)
    urgent.priority = delivery_pb2.PRIORITY_HIGH
    handled = [asyncio.ensure_future(handle(sender.on_task, low, meta()))]
    await settle_loop()
    handled.append(asyncio.ensure_future(handle(sender.on_task, urgent, meta())))
    await settle_loop()
    assert deliverer.attempted == ["d1"]
    deliverer.gate.set()
    await asyncio.wait_for(asyncio.gather(*handled), 1)
    assert deliverer.attempted == ["d1", "d4", "d2", "d3"], "the urgent one next"


async def test_a_stopping_sender_waits_for_the_message_of_a_batch_not_only_its_tasks() -> None:
    # What drain waits for is the task that acks the broker message (the consumer's), once
    # per message, not each item's.
    sender, _, broker = sender_of()
    handling = asyncio.ensure_future(handle(sender.on_task, batch(1, 2), meta()))
    await settle_loop()
    assert sender.in_flight == 1 and handling in sender._in_flight
    broker.confirm("d1")
    broker.confirm("d2")
    assert await sender.drain(1) == 0
    assert handling.done()
