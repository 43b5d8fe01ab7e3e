"""Granted tasks to the senders by group commit (``scheduler/task_lanes.py``): alone when the
lane is idle, then those granted meanwhile together, at most ``task_batch`` a message, one
priority a message, each with the lease header; ``task_batch`` 1 publishes each at once."""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from postline.common.broker.groups import Encoded
from postline.common.broker.topology import TASK_KEY
from postline.scheduler.task_lanes import TaskLanes
from postline.v1 import delivery_pb2

HEADERS = {"CC": ["scheduler.state.0"]}


class Broker:
    """Confirms a publish when the test says so."""

    def __init__(self) -> None:
        self.published: list[tuple[str, ProtoMessage, dict[str, Any]]] = []
        self.confirm = asyncio.Event()

    async def publish(self, routing_key: str, message: ProtoMessage, **kwargs: Any) -> None:
        self.published.append((routing_key, message, kwargs))
        await self.confirm.wait()


def task(n: int, priority: int = delivery_pb2.PRIORITY_NORMAL) -> delivery_pb2.DeliveryTask:
    return delivery_pb2.DeliveryTask(
        delivery=delivery_pb2.AcceptedDelivery(delivery_id=f"d{n}"),
        grant_id=f"g{n}",
        priority=priority,
    )


def tasks_of(message: ProtoMessage | Encoded) -> list[str]:
    if isinstance(message, Encoded):  # a batch
        message = message.decode()
    if isinstance(message, delivery_pb2.DeliveryTasks):
        return [t.grant_id for t in message.tasks]
    assert isinstance(message, delivery_pb2.DeliveryTask)
    return [message.grant_id]


async def test_tasks_granted_meanwhile_go_together_a_few_each_one_priority_a_message() -> None:
    broker = Broker()
    lanes = TaskLanes(broker, HEADERS, batch=3)  # type: ignore[arg-type]
    first = asyncio.ensure_future(lanes.publish(task(0)))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(lanes.publish(task(n))) for n in range(1, 8)]
    urgent = asyncio.ensure_future(lanes.publish(task(9, delivery_pb2.PRIORITY_HIGH)))
    await asyncio.sleep(0)
    assert not first.done(), "returns only once confirmed"
    broker.confirm.set()
    await asyncio.wait_for(asyncio.gather(first, *rest, urgent), 1)
    sent = [(tasks_of(m), kw["priority"]) for _, m, kw in broker.published]
    assert all(key == TASK_KEY and kw["headers"] == HEADERS for key, _, kw in broker.published)
    normal = [grants for grants, p in sent if p == delivery_pb2.PRIORITY_NORMAL]
    assert normal == [["g0"], ["g1", "g2", "g3"], ["g4", "g5", "g6"], ["g7"]]
    assert (["g9"], delivery_pb2.PRIORITY_HIGH) in sent


async def test_a_batch_of_one_publishes_each_task_at_once() -> None:
    broker = Broker()
    lanes = TaskLanes(broker, HEADERS, batch=1)  # type: ignore[arg-type]
    waiting = [asyncio.ensure_future(lanes.publish(task(n))) for n in range(5)]
    await asyncio.sleep(0)
    assert len(broker.published) == 5, "all in flight at once, as before batches"
    broker.confirm.set()
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    assert [tasks_of(m) for _, m, _ in broker.published] == [[f"g{n}"] for n in range(5)]
