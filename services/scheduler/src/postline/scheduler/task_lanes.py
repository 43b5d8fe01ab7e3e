"""Granted tasks travel to the senders by group commit (``broker/groups.py``).

One lane per priority (a broker message has one priority on the ``sender.tasks`` priority
queue): tasks granted while the lane is idle are published at once (those granted in the same
pass of the event loop, as the slots one batch of results frees, together; one alone as
itself); those granted while the lane's publish is in flight go together as one
``DeliveryTasks`` once the broker confirmed it, at most ``task_batch`` each. Every granting
coroutine returns only once the message carrying its task was confirmed (or raises
``BrokerUnavailable``), as a publish of its own did.

Each message is routed to the senders and, by its ``CC`` header, to the shard's state queue:
a batch's copy is one lease covering all its grants (``leases.py``).

The bound keeps competing senders sharing work: a sender's prefetch counts broker messages,
so a batch goes whole to one sender. 8 by default (two fifths of a sender's default
concurrency): two senders still took equal shares, and with one publish in flight per lane
fewer per message made the tasks wait for each other (bench/README.md, "Round 5").
"""

from __future__ import annotations

import functools

from postline.common.broker import Broker
from postline.common.broker.groups import Lane, batch_items
from postline.common.broker.topology import TASK_KEY
from postline.v1 import delivery_pb2


class TaskLanes:
    def __init__(self, broker: Broker, lease_headers: dict[str, list[str]], batch: int) -> None:
        self.broker = broker
        self.lease_headers = lease_headers
        self.batch = batch
        self._lanes: dict[int, Lane] = {}

    async def publish(self, task: delivery_pb2.DeliveryTask) -> None:
        """Publish a granted task with its lease; return once the message carrying it was
        confirmed."""
        if self.batch == 1:
            # Each alone, as before batches: published at once, any number in flight (a lane
            # has one publish in flight, which one task a message would make a queue).
            await self.broker.publish(
                TASK_KEY, task, priority=task.priority, headers=self.lease_headers
            )
            return
        lane = self._lanes.get(task.priority)
        if lane is None:
            publish = functools.partial(
                self.broker.publish, priority=task.priority, headers=self.lease_headers
            )
            lane = self._lanes[task.priority] = Lane(
                TASK_KEY, batch_items, publish, max_items=self.batch
            )
        await lane.put(task)
