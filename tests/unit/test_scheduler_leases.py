"""The lease book with tasks granted together: a batch's copy is one lease for all its grants,
freed per result, acked after the last; a new owner counts every grant of it; a lease partly
done is re-published without the grants done (``scheduler/leases.py``).

Pure logic: the state queue's messages are stand-ins that record their ack, the broker one that
records what is published."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from postline.common.broker.consumer import TYPE_HEADER
from postline.common.timeutil import to_timestamp
from postline.scheduler.gates import Gates
from postline.scheduler.leases import SHRINK_AFTER, StateBook
from postline.scheduler.pauses import PausedDomains
from postline.v1 import delivery_pb2, scheduler_pb2


class Incoming:
    """A state queue message as the owner gets it (unacked until ``ack``)."""

    def __init__(self, message: ProtoMessage) -> None:
        self.body = message.SerializeToString()
        self.headers = {TYPE_HEADER: message.DESCRIPTOR.full_name}
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, ProtoMessage]] = []

    async def publish(self, routing_key: str, message: ProtoMessage, **_: Any) -> None:
        self.messages.append((routing_key, message))


class StateQueue:
    """What a new owner reads first (``StateBook.recover``)."""

    def __init__(self, messages: list[Incoming]) -> None:
        self.messages = list(messages)

    async def get(self, **_: Any) -> Incoming | None:
        return self.messages.pop(0) if self.messages else None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def task(n: int, granted_at: float = 1000.0) -> delivery_pb2.DeliveryTask:
    return delivery_pb2.DeliveryTask(
        delivery=delivery_pb2.AcceptedDelivery(
            delivery_id=f"d{n}", recipient_domain="example.test", server="default"
        ),
        attempt=1,
        grant_id=f"g{n}",
        speed_key="example.test",
        shard=0,
        granted_at=to_timestamp(granted_at),
    )


def batch(*numbers: int) -> delivery_pb2.DeliveryTasks:
    return delivery_pb2.DeliveryTasks(tasks=[task(n) for n in numbers])


async def book_of() -> tuple[StateBook, Published, Clock, list[Awaitable[Any]]]:
    clock = Clock()
    broker = Published()
    spawned: list[Awaitable[Any]] = []
    gates = Gates(clock, PausedDomains(clock), claimed_at=clock())
    book = StateBook(
        0,
        Incoming(scheduler_pb2.ShardToken(shard=0)),  # type: ignore[arg-type]
        broker=broker,  # type: ignore[arg-type]
        gates=gates,
        clock=clock,
        spawn=spawned.append,
    )
    return book, broker, clock, spawned


async def settled(spawned: list[Awaitable[Any]]) -> None:
    while spawned:
        await spawned.pop()


async def test_a_batch_copy_is_one_lease_freed_per_result_and_acked_after_the_last() -> None:
    book, _, _, spawned = await book_of()
    copy = Incoming(batch(1, 2, 3))
    await book.on_state_message(copy)  # type: ignore[arg-type]
    assert set(book.leases) == {"g1", "g2", "g3"}
    book.release("g2")
    book.release("g1")
    await settled(spawned)
    assert set(book.leases) == {"g3"}
    assert not copy.acked, "a grant of it is still in flight"
    book.release("g3")
    await settled(spawned)
    assert copy.acked and not book.leases


async def test_results_before_the_batch_copy_leave_it_holding_only_the_others() -> None:
    book, _, _, spawned = await book_of()
    book.release("g1")  # its result came before the copy
    copy = Incoming(batch(1, 2))
    await book.on_state_message(copy)  # type: ignore[arg-type]
    assert set(book.leases) == {"g2"} and not copy.acked
    book.release("g2")
    await settled(spawned)
    assert copy.acked
    # Every grant done before its copy came: acked on arrival.
    for n in (3, 4):
        book.release(f"g{n}")
    late = Incoming(batch(3, 4))
    await book.on_state_message(late)  # type: ignore[arg-type]
    assert late.acked and not book.leases


async def test_a_new_owner_counts_every_grant_of_a_partly_done_batch() -> None:
    # The previous owner freed g1 and g2 but could not ack part of the message: the new owner
    # counts all four (over-counting is safe, under-counting is not), and a lone lease too.
    book, _, _, spawned = await book_of()
    left = [Incoming(batch(1, 2, 3, 4)), Incoming(task(5))]
    await book.recover(StateQueue(left))  # type: ignore[arg-type]
    gate = book.gates.get("default", "example.test")
    assert gate is not None
    assert set(gate.state.in_flight) == {"g1", "g2", "g3", "g4", "g5"}
    assert set(book.leases) == {"g1", "g2", "g3", "g4", "g5"}
    for n in (3, 4):  # the results still to come free their slots here
        book.release(f"g{n}")
    await settled(spawned)
    assert not left[0].acked  # g1 and g2 count until the lease is shrunk or times out


async def test_a_lease_partly_done_is_republished_without_the_grants_done() -> None:
    book, broker, clock, spawned = await book_of()
    copy = Incoming(batch(1, 2, 3))
    await book.on_state_message(copy)  # type: ignore[arg-type]
    book.release("g1")
    await book.shrink(clock() - SHRINK_AFTER)
    assert not broker.messages, "not before SHRINK_AFTER"
    clock.now += SHRINK_AFTER + 1
    await book.shrink(clock() - SHRINK_AFTER)
    renewed = [m for _, m in broker.messages]
    assert [m.grant_id for m in renewed] == ["g2", "g3"]  # type: ignore[attr-defined]
    assert all(isinstance(m, scheduler_pb2.SpeedLease) for m in renewed)
    await book.shrink(clock() - SHRINK_AFTER)
    assert len(broker.messages) == 2, "published once"
    # g3's result comes before its copy; g2's copy comes back: the batch's copy covers
    # nothing any more and is acked.
    book.release("g3")
    for message in renewed:
        await book.on_state_message(Incoming(message))  # type: ignore[arg-type]
    await settled(spawned)
    assert copy.acked
    assert set(book.leases) == {"g2"}
    assert book.leases["g2"].incoming is not copy


async def test_renewal_republishes_each_grant_of_a_batch_lease() -> None:
    book, broker, clock, spawned = await book_of()
    copy = Incoming(batch(1, 2))
    await book.on_state_message(copy)  # type: ignore[arg-type]
    clock.now += 700
    await book.renew(600)
    renewed = [m for _, m in broker.messages if isinstance(m, scheduler_pb2.SpeedLease)]
    assert sorted(m.grant_id for m in renewed) == ["g1", "g2"]
    for message in renewed:
        await book.on_state_message(Incoming(message))  # type: ignore[arg-type]
    await settled(spawned)
    assert copy.acked, "replaced by the renewed copies"
    assert set(book.leases) == {"g1", "g2"}
    assert not book.partly_done
