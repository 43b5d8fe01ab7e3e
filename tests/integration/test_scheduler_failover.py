"""Two scheduler replicas on one broker: one owns the shards, the other stands by and takes
over when the owner's connection goes, without exceeding a limit or losing a delivery."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from postline.common.broker.topology import shard_for
from postline.common.policy import load_policy
from postline.scheduler import ownership, queues
from postline.scheduler.service import SchedulerService
from tests.integration.scheduler_support import (
    SHARDS,
    accept,
    harness,
    owns_all,
    running,
    settings,
    steady,
    write_policy,
)
from tests.polling import apoll_until

LIMITS = """
      - match: [two.test]
        connections: 2
"""


async def test_the_standby_takes_over_and_counts_what_is_in_flight(
    amqp_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, speed=LIMITS)
    async with (
        harness(amqp_url) as (broker, senders, _),
        running(amqp_url, policy) as first,
    ):
        await owns_all(first)
        async with running(amqp_url, policy) as second:
            await steady(lambda: not second.ownership.runtimes, "the standby owns nothing", 0.5)
            for i in range(6):
                await accept(broker, f"user{i}@two.test")
            await apoll_until(lambda: senders.in_flight("two.test") == 2, "two grants")
            shard = shard_for("two.test", SHARDS)
            await apoll_until(
                lambda: first.ownership.runtimes[shard].gates
                and next(iter(first.ownership.runtimes[shard].gates.values())).backlog,
                "the rest in the backlog",
            )

            # The owner's consumer connection dies (as when its process is killed).
            assert first.ownership.connection is not None
            await first.ownership.connection.close()
            await apoll_until(lambda: len(second.ownership.runtimes) == SHARDS, "takeover")
            taken = second.ownership.runtimes[shard]
            gate = next(g for g in taken.gates.values() if g.key == "domain:two.test")
            assert len(gate.state.in_flight) == 2  # from the first owner's leases

            # The two attempts in flight still hold their slots: nothing new is granted...
            await steady(lambda: len(senders.tasks) == 2, "no grant beyond the limit")
            # ...until their results come back, to the new owner.
            for _ in range(6):
                await apoll_until(lambda: senders.pending, "a grant to answer")
                assert senders.in_flight("two.test") <= 2
                await senders.answer(next(iter(senders.pending.values())))
            await apoll_until(
                lambda: len({t.delivery.delivery_id for t in senders.tasks}) == 6
                and not senders.pending,
                "every delivery sent once",
            )
            assert len(senders.tasks) == 6
            await apoll_until(lambda: not gate.state.in_flight, "no slot left in use")


async def test_a_stopping_owner_hands_its_shards_over(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=LIMITS)
    async with harness(amqp_url) as (broker, senders, _), running(amqp_url, policy) as second:
        async with running(amqp_url, policy) as first:
            await apoll_until(
                lambda: len(first.ownership.runtimes) + len(second.ownership.runtimes) == SHARDS,
                "every shard owned",
            )
            for i in range(4):
                await accept(broker, f"user{i}@two.test")
            await apoll_until(lambda: senders.in_flight("two.test") == 2, "two grants")
        await owns_all(second)
        while len({t.delivery.delivery_id for t in senders.tasks}) < 4 or senders.pending:
            await apoll_until(lambda: senders.pending, "a grant to answer")
            assert senders.in_flight("two.test") <= 2
            await senders.answer(next(iter(senders.pending.values())))
        assert len(senders.tasks) == 4


async def test_a_hand_back_that_hangs_does_not_keep_the_scheduler_from_stopping(
    amqp_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shard's clean hand-back waits on the broker (consumer cancels, the channel's close);
    # a broker that stops answering must not keep the process from ending.
    monkeypatch.setattr(ownership, "HANDBACK_SECONDS", 1.0)
    policy = write_policy(tmp_path, speed=LIMITS)
    first = SchedulerService(settings(amqp_url, policy), load_policy(policy), time.time)
    await first.start()
    stopped = False
    try:
        async with harness(amqp_url), running(amqp_url, policy) as second:
            await owns_all(first)
            await steady(lambda: not second.ownership.runtimes, "the standby owns nothing", 0.5)

            async def hangs() -> None:
                await asyncio.sleep(3600)

            monkeypatch.setattr(first.ownership.runtimes[0], "stop", hangs)
            started = time.monotonic()
            await first.stop()
            stopped = True
            assert time.monotonic() - started < 15
            await owns_all(second)  # its connection closed: the standby took every shard
    finally:
        if not stopped:
            await first.stop()


async def test_a_takeover_that_loses_its_cancel_does_not_keep_the_scheduler_from_stopping(
    amqp_url: str, tmp_path: Path
) -> None:
    """A standby stopped while it takes shards over: on Python 3.11 a library's
    ``asyncio.wait_for`` (aio-pika's ``Queue.get``, reading the leases) can lose the cancel,
    and the shard then went on to be owned and waited for its channel to end, for ever (a CI
    run's scheduler killed after 30 s). Here every takeover loses its cancel on purpose."""
    policy = write_policy(tmp_path, speed=LIMITS)
    first = SchedulerService(settings(amqp_url, policy), load_policy(policy), time.time)
    await first.start()
    async with harness(amqp_url):
        await owns_all(first)
        second = SchedulerService(settings(amqp_url, policy), load_policy(policy), time.time)
        await second.start()
        make_runtime = second.ownership.factory
        taking_over = asyncio.Event()

        def slow_takeover(*args: Any) -> Any:
            runtime = make_runtime(*args)
            start = runtime.start

            async def loses_its_cancel() -> None:
                taking_over.set()
                try:
                    await asyncio.sleep(3600)  # a broker call in progress
                except asyncio.CancelledError:
                    pass  # lost, as Python 3.11's wait_for can lose it
                await start()

            runtime.start = loses_its_cancel  # type: ignore[method-assign]
            return runtime

        second.ownership.factory = slow_takeover
        await first.stop()  # hands its shards back: the standby takes them over
        async with asyncio.timeout(30):
            await taking_over.wait()
        async with asyncio.timeout(30):
            await second.stop()
        assert not second.ownership.runtimes


async def test_held_state_is_renewed_and_an_idle_backlog_is_deleted(
    amqp_url: str, tmp_path: Path
) -> None:
    """RabbitMQ closes a channel that holds a message past its consumer timeout (30 min): the
    owner re-publishes what it holds (leases, backlog records, its token) well before, and
    deletes a backlog queue once it is empty and idle."""
    policy = write_policy(tmp_path, speed=LIMITS)
    async with (
        harness(amqp_url) as (broker, senders, _),
        running(amqp_url, policy, renew_after=1.0, backlog_idle=1.0) as svc,
    ):
        await owns_all(svc)
        for i in range(5):
            await accept(broker, f"user{i}@two.test")
        await apoll_until(lambda: senders.in_flight("two.test") == 2, "two grants")
        runtime = svc.ownership.runtimes[shard_for("two.test", SHARDS)]
        await apoll_until(
            lambda: len(runtime.book.leases) == 2 and runtime.book.indexes, "state held"
        )
        first = {g: held.incoming for g, held in runtime.book.leases.items()}
        first_index = next(iter(runtime.book.indexes.values())).incoming
        first_token = runtime.book.token.incoming

        await apoll_until(
            lambda: all(runtime.book.leases[g].incoming is not m for g, m in first.items())
            and next(iter(runtime.book.indexes.values())).incoming is not first_index
            and runtime.book.token.incoming is not first_token,
            "leases, the backlog record and the token renewed",
            15,
        )
        assert runtime is svc.ownership.runtimes[shard_for("two.test", SHARDS)]  # still owner
        await steady(lambda: len(senders.tasks) == 2, "renewal grants nothing")

        while len({t.delivery.delivery_id for t in senders.tasks}) < 5 or senders.pending:
            await apoll_until(lambda: senders.pending, "a grant to answer")
            await senders.answer(next(iter(senders.pending.values())))
        gate = next(g for g in runtime.gates.values() if g.key == "domain:two.test")
        await apoll_until(lambda: gate.backlog is None and not runtime.book.indexes, "deleted", 20)
        assert not runtime.book.leases
        channel = await broker.connection.channel()
        state = await channel.declare_queue(queues.state_queue(runtime.number), passive=True)
        assert state.declaration_result.message_count == 0
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            name = queues.backlog_queue(runtime.number, gate.name)
            await (await broker.connection.channel()).declare_queue(name, passive=True)
