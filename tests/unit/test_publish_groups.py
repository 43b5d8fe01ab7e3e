"""Group commit (common/broker/groups.py) and a message's publishes (common/submission.py):
a publish whose every waiter gave up is not sent late; one failure ends a message's others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from postline.common.broker.errors import BrokerUnavailable
from postline.common.broker.groups import GroupPublisher
from postline.common.submission import _all_or_first_failure
from postline.v1 import delivery_pb2


class SlowBroker:
    """A publish waits until ``release`` is set (a connection being re-established)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sent: list[tuple[str, Any]] = []

    async def publish(self, routing_key: str, message: Any, **_: Any) -> None:
        await self.release.wait()
        self.sent.append((routing_key, message))


def test_a_publish_every_waiter_gave_up_on_is_not_sent_late() -> None:
    async def scenario() -> list[tuple[str, Any]]:
        broker = SlowBroker()
        groups = GroupPublisher(broker.publish)
        item = delivery_pb2.AcceptedDelivery(delivery_id="d1")
        waiter = asyncio.ensure_future(groups.publish("accepted.1", item))
        await asyncio.sleep(0.01)  # in flight, waiting for the connection
        waiter.cancel()  # its client was told to try again
        await asyncio.sleep(0.01)
        broker.release.set()  # the connection is back
        await asyncio.sleep(0.01)
        return broker.sent

    assert asyncio.run(scenario()) == []


def test_a_publish_one_waiter_still_waits_for_goes_out() -> None:
    async def scenario() -> tuple[list[int], bool]:
        broker = SlowBroker()
        groups = GroupPublisher(broker.publish)

        def publish(delivery_id: str) -> asyncio.Future[None]:
            item = delivery_pb2.AcceptedDelivery(delivery_id=delivery_id)
            return asyncio.ensure_future(groups.publish("accepted.1", item))

        first = publish("d1")
        await asyncio.sleep(0.01)
        # Two more arrive while the first is in flight: they travel together next.
        second, third = publish("d2"), publish("d3")
        await asyncio.sleep(0.01)
        second.cancel()  # one gives up while waiting for the connection...
        await asyncio.sleep(0.01)
        broker.release.set()
        await asyncio.gather(first, third)  # ...the other still waits: its batch goes out
        sizes = [len(getattr(m, "deliveries", [])) or 1 for _, m in broker.sent]
        return sizes, second.cancelled()

    assert asyncio.run(scenario()) == ([1, 1], True)


def test_one_failed_publish_cancels_the_others_of_the_message() -> None:
    async def scenario() -> tuple[list[str], BaseException | None]:
        finished: list[str] = []

        async def fails() -> None:
            await asyncio.sleep(0.01)
            raise BrokerUnavailable("publish to accepted.0 not confirmed")

        async def waits(name: str) -> None:
            await asyncio.sleep(1)
            finished.append(name)

        try:
            await _all_or_first_failure([fails(), waits("b"), waits("c")])
        except BrokerUnavailable as exc:
            return finished, exc
        return finished, None

    finished, failure = asyncio.run(scenario())
    assert finished == []
    assert isinstance(failure, BrokerUnavailable)


def test_every_publish_done_is_success() -> None:
    async def ok() -> None:
        await asyncio.sleep(0)

    asyncio.run(_all_or_first_failure([ok(), ok()]))


def test_no_publish_at_all_is_success() -> None:
    asyncio.run(_all_or_first_failure([]))


@pytest.mark.parametrize("count", [1, 3])
def test_cancelling_the_message_cancels_each_publish(count: int) -> None:
    async def scenario() -> int:
        started = asyncio.Event()
        cancelled = 0

        async def waits() -> None:
            nonlocal cancelled
            started.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled += 1
                raise

        publishes = _all_or_first_failure([waits() for _ in range(count)])
        task = asyncio.get_running_loop().create_task(publishes)
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return cancelled

    assert asyncio.run(scenario()) == count
