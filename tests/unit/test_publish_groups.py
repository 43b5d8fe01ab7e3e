"""Group commit (common/broker/groups.py) and a message's publishes (common/submission.py):
a publish whose every waiter gave up is not sent late; items ready in one pass of the event
loop go together; one failure ends a message's others; lingering events go together, in time,
at once with an event someone waits for or a close."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from postline.common.broker.errors import BrokerUnavailable
from postline.common.broker.events import EventPublisher
from postline.common.broker.groups import BATCHES, Encoded, GroupPublisher, Waiting, batch_items
from postline.common.submission import _all_or_first_failure
from postline.v1 import delivery_pb2, events_pb2


def decoded(message: Any) -> Any:
    """A batch as its message (lanes publish batches encoded, ``batch_items``)."""
    return message.decode() if isinstance(message, Encoded) else message


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
        sizes = [len(getattr(decoded(m), "deliveries", [])) or 1 for _, m in broker.sent]
        return sizes, second.cancelled()

    assert asyncio.run(scenario()) == ([1, 1], True)


def test_items_ready_in_one_pass_of_the_loop_go_together_though_the_lane_is_idle() -> None:
    async def scenario() -> list[list[str]]:
        sent: list[list[str]] = []

        async def publish(routing_key: str, message: Any, **_: Any) -> None:
            items = getattr(decoded(message), "deliveries", None) or [message]
            sent.append([d.delivery_id for d in items])

        groups = GroupPublisher(publish)

        async def one(delivery_id: str) -> None:
            item = delivery_pb2.AcceptedDelivery(delivery_id=delivery_id)
            await groups.publish("accepted.1", item)

        # e.g. the items of one received batch, handled at once: one broker message.
        await asyncio.gather(*(one(f"d{n}") for n in range(5)))
        await one("d5")  # alone: itself, one pass of the loop later
        return sent

    assert asyncio.run(scenario()) == [[f"d{n}" for n in range(5)], ["d5"]]


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


# --- lingering events (ingress's queued events, nobody waiting for them) --------------------


class Recorder:
    """Confirms at once; records when each message went and how many events it carried."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, float]] = []

    async def publish(self, routing_key: str, message: Any, **_: Any) -> None:
        events = len(getattr(message, "events", [])) or 1
        self.sent.append((routing_key, events, asyncio.get_running_loop().time()))


def queued(n: int) -> events_pb2.DeliveryEvent:
    return events_pb2.DeliveryEvent(
        event_id=f"e{n}", delivery_id=f"d{n}", status=events_pb2.DELIVERY_STATUS_QUEUED
    )


def test_lingering_events_wait_for_others_and_go_together_in_time() -> None:
    async def scenario() -> tuple[list[int], float]:
        broker = Recorder()
        events = EventPublisher(broker.publish)
        started = asyncio.get_running_loop().time()
        waits = []
        for n in range(10):  # ten messages accepted 10 ms apart
            waits.append(asyncio.ensure_future(events.publish_many([queued(n)], linger=0.1)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*waits)
        return [count for _, count, _ in broker.sent], broker.sent[0][2] - started

    counts, first_went = asyncio.run(scenario())
    assert counts == [10]  # one broker message, not one per event
    assert 0.09 <= first_went < 0.5  # the first waited for the others, within its linger


def test_an_event_someone_waits_for_takes_the_lingering_ones_along_at_once() -> None:
    async def scenario() -> tuple[list[int], float]:
        broker = Recorder()
        events = EventPublisher(broker.publish)
        loop = asyncio.get_running_loop()
        lingering = asyncio.ensure_future(events.publish_many([queued(1)], linger=10.0))
        await asyncio.sleep(0.01)
        started = loop.time()
        await events.publish(queued(2))  # e.g. the send API's, answered after its confirm
        await lingering
        return [count for _, count, _ in broker.sent], loop.time() - started

    counts, waited = asyncio.run(scenario())
    assert counts == [2]
    assert waited < 1.0


def test_closing_sends_what_lingers_at_once() -> None:
    async def scenario() -> tuple[list[int], float]:
        broker = Recorder()
        events = EventPublisher(broker.publish)
        loop = asyncio.get_running_loop()
        lingering = asyncio.ensure_future(events.publish_many([queued(1)], linger=10.0))
        await asyncio.sleep(0.01)
        started = loop.time()
        await events.close(timeout=5.0)
        await lingering
        return [count for _, count, _ in broker.sent], loop.time() - started

    counts, took = asyncio.run(scenario())
    assert counts == [1]
    assert took < 1.0


def _items(kind: type[Any]) -> list[Any]:
    delivery = delivery_pb2.AcceptedDelivery(
        delivery_id="d1", recipient_domain="example.test", content=b"x" * 20_000, subject="é"
    )
    made: dict[type[Any], list[Any]] = {
        delivery_pb2.AcceptedDelivery: [delivery, delivery_pb2.AcceptedDelivery()],
        delivery_pb2.DeliveryTask: [
            delivery_pb2.DeliveryTask(delivery=delivery, attempt=1, grant_id="g" * 200),
            delivery_pb2.DeliveryTask(),
        ],
        delivery_pb2.DeliveryResult: [
            delivery_pb2.DeliveryResult(reply_code=250, reply_text="ok" * 100),
            delivery_pb2.DeliveryResult(),
        ],
    }
    return made[kind]


@pytest.mark.parametrize("kind", list(BATCHES), ids=lambda kind: kind.__name__)
def test_a_batch_is_encoded_as_its_message_would_be(kind: type[Any]) -> None:
    """``batch_items`` joins its items' encodings: the very bytes of the batch message
    (an empty item and one of 2 or 3 bytes of length, an empty trace context and one)."""
    batch, field = BATCHES[kind]
    items = _items(kind)
    traces = ["", "00-" + "1" * 32 + "-" + "2" * 16 + "-01"]

    async def scenario() -> Encoded:
        waiting = []
        for item, trace_id in zip(items, traces, strict=True):
            done = asyncio.get_running_loop().create_future()
            waiting.append(_Traced(item, done, contextvars.copy_context(), trace_id))
        return batch_items(waiting)

    encoded = asyncio.run(scenario())
    expected = batch(traceparents=traces)
    getattr(expected, field).extend(items)
    assert encoded.type_name == batch.DESCRIPTOR.full_name
    assert encoded.body == expected.SerializeToString()
    assert encoded.decode() == expected


class _Traced(Waiting):
    """A waiting item whose publisher's trace context is given."""

    __slots__ = ("trace_id",)

    def __init__(self, item: Any, done: Any, context: Any, trace_id: str) -> None:
        super().__init__(item, done, context)
        self.trace_id = trace_id

    def traceparent(self) -> str:
        return self.trace_id


def test_a_linger_under_a_millisecond_on_uvloop() -> None:
    """uvloop's ``call_later`` gives a plain ``Handle`` (it has no ``when``) for a delay that
    rounds to 0 ms: a lane that set such a timer and is dispatched again before it runs still
    works (it raised AttributeError in an event loop callback, and its items waited)."""
    import uvloop

    from postline.common.broker.groups import Lane

    async def scenario() -> list[list[str]]:
        broker = SlowBroker()
        broker.release.set()
        lane = Lane("accepted.1", batch_items, broker.publish)
        first = lane.add(delivery_pb2.AcceptedDelivery(delivery_id="d1"), linger=0.0004)
        lane.dispatch()  # the timer: a delay of 0.4 ms, a Handle on uvloop
        second = lane.add(delivery_pb2.AcceptedDelivery(delivery_id="d2"), linger=0.0004)
        lane.dispatch()  # again before the timer ran
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        return [[d.delivery_id for d in decoded(m).deliveries] for _, m in broker.sent]

    assert uvloop.run(scenario()) == [["d1", "d2"]]
