"""Granted tasks travel to the senders by group commit (``scheduler/task_lanes.py``): those
granted together come as one broker message, a few at most, and the message's copy in the
state queue is one lease for all of them. Each result frees its own slot at once; a new owner
counts every grant of a batch still held, done or not."""

from __future__ import annotations

import asyncio
from pathlib import Path

from postline.common.broker.topology import shard_for
from postline.scheduler.service import SchedulerService
from postline.scheduler.shard import ShardRuntime
from tests.integration.scheduler_support import (
    SHARDS,
    Senders,
    accept,
    harness,
    owns_all,
    running,
    steady,
    write_policy,
)
from tests.polling import apoll_until

LIMITS = """
      - match: [eight.test]
        connections: 8
      - match: [four.test]
        connections: 4
"""


def runtime_of(service: SchedulerService, domain: str) -> ShardRuntime:
    return service.ownership.runtimes[shard_for(domain, SHARDS)]


async def a_batch(senders: Senders, grants: int) -> list[str]:
    """The grants of a broker message that carried several tasks, once all were received."""
    await apoll_until(lambda: len(senders.tasks) >= grants, f"{grants} grants")
    batches = [m for m in senders.messages if len(m) > 1]
    assert batches, f"tasks granted together travel together: {senders.messages}"
    assert max(len(m) for m in senders.messages) <= 3, "at most task_batch a message"
    return batches[0]


async def test_a_batch_lease_frees_each_grant_as_its_result_comes(
    amqp_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, speed=LIMITS)
    async with (
        harness(amqp_url) as (broker, senders, _),
        running(amqp_url, policy, task_batch=3) as svc,
    ):
        await owns_all(svc)
        await asyncio.gather(*(accept(broker, f"user{i}@eight.test") for i in range(8)))
        batch = await a_batch(senders, 8)
        runtime = runtime_of(svc, "eight.test")
        await apoll_until(lambda: set(batch) <= set(runtime.book.leases), "the batch's lease")
        lease = runtime.book.leases[batch[0]]
        assert all(runtime.book.leases[g] is lease for g in batch), "one lease for the batch"
        gate = next(g for g in runtime.gates.values() if g.key == "domain:eight.test")

        first = next(t for t in senders.tasks if t.grant_id == batch[0])
        await senders.answer(first)
        await apoll_until(lambda: batch[0] not in gate.state.in_flight, "its slot freed")
        assert batch[0] not in runtime.book.leases and batch[0] not in lease.grants
        assert all(g in gate.state.in_flight for g in batch[1:]), "the others still count"
        # Held for the others (by the batch's copy, or by copies of their own once it was
        # shrunk): acked only when every result came.
        assert all(g in runtime.book.leases for g in batch[1:])

        await senders.answer_all("eight.test")
        await apoll_until(lambda: not runtime.book.leases, "every lease acked")
        assert not gate.state.in_flight


async def test_a_new_owner_counts_a_partly_done_batch(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=LIMITS)
    async with (
        harness(amqp_url) as (broker, senders, _),
        running(amqp_url, policy, task_batch=3) as first,
    ):
        await owns_all(first)
        async with running(amqp_url, policy, task_batch=3) as second:
            await steady(lambda: not second.ownership.runtimes, "the standby owns nothing", 0.5)
            await asyncio.gather(*(accept(broker, f"user{i}@four.test") for i in range(4)))
            batch = await a_batch(senders, 4)
            owner = runtime_of(first, "four.test")
            await apoll_until(lambda: set(batch) <= set(owner.book.leases), "the batch's lease")
            done = next(t for t in senders.tasks if t.grant_id == batch[0])
            await senders.answer(done)
            await apoll_until(lambda: batch[0] not in owner.book.leases, "one grant done")

            # The owner's connection dies with the batch's copy unacked (part of it done).
            assert first.ownership.connection is not None
            await first.ownership.connection.close()
            await apoll_until(lambda: len(second.ownership.runtimes) == SHARDS, "takeover")
            taken = runtime_of(second, "four.test")
            gate = next(g for g in taken.gates.values() if g.key == "domain:four.test")
            still = {t.grant_id for t in senders.pending.values()}
            assert len(still) == 3
            # Every grant in flight is counted (the one done may be too: safe).
            assert still <= set(gate.state.in_flight)
            await accept(broker, "late@four.test")
            await steady(lambda: senders.in_flight("four.test") <= 4, "no grant beyond the limit")
            await senders.answer_all("four.test")
            await apoll_until(
                lambda: any(t.delivery.recipient == "late@four.test" for t in senders.tasks),
                "the late one granted once slots came back",
            )
