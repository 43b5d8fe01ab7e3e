"""Speed limits in the scheduler, counted at the grant: connections, interval, groups,
priority under a backlog, and no head-of-line blocking between destinations."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from prometheus_client import REGISTRY

from postline.common.broker.topology import shard_for
from postline.common.semconv import METRIC_BROKER_RECEIVED
from postline.v1 import delivery_pb2
from tests.integration.scheduler_support import (
    SHARDS,
    accept,
    harness,
    owns_all,
    running,
    steady,
    write_policy,
)
from tests.polling import apoll_until

LIMITS = """
      - match: [two.test]
        connections: 2
      - match: [four.test]
        connections: 4
      - match: [one.test]
        connections: 1
      - match: [spaced.test]
        interval: 300ms
      - match: [a-mobile.test, b-mobile.test, c-mobile.test, d-mobile.test]
        group: mobile
        connections: 2
"""
PRIORITY = """
    priority:
      - {header: X-Category, pattern: "^receipt$", level: high}
      - {header: X-Category, pattern: "^campaign$", level: low}
"""


async def test_a_domain_never_gets_more_grants_than_its_connections(
    amqp_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, speed=LIMITS)
    async with harness(amqp_url) as (broker, senders, _), running(amqp_url, policy) as svc:
        await owns_all(svc)
        for i in range(8):
            await accept(broker, f"user{i}@two.test")
        await apoll_until(lambda: senders.in_flight("two.test") == 2, "two grants")
        await steady(lambda: senders.in_flight("two.test") == 2, "no third grant")

        delivered = 0
        while delivered < 8:
            task = next(iter(senders.pending.values()))
            await senders.answer(task)
            delivered += 1
            await apoll_until(
                lambda d=delivered: senders.in_flight("two.test") == min(2, 8 - d)
                and len(senders.tasks) == min(8, d + 2),
                f"the next grant after {delivered} results",
            )
            assert senders.in_flight("two.test") <= 2
        assert len({t.delivery.delivery_id for t in senders.tasks}) == 8


async def test_backlogged_deliveries_travel_together_and_each_is_sent_once(
    amqp_url: str, tmp_path: Path
) -> None:
    def batches_received() -> float:
        labels = {"type": delivery_pb2.DeliveryTasks.DESCRIPTOR.full_name}
        return REGISTRY.get_sample_value(METRIC_BROKER_RECEIVED, labels) or 0.0

    before = batches_received()
    policy = write_policy(tmp_path, speed=LIMITS)
    async with harness(amqp_url) as (broker, senders, _), running(amqp_url, policy) as svc:
        await owns_all(svc)
        # Four in flight, four waiting in memory, the rest to the backlog queue at once: those
        # that arrive while its publish is in flight go together, two a message (half the
        # key's prefetch of four).
        accepted = await asyncio.gather(*(accept(broker, f"bulk{i}@four.test") for i in range(60)))
        await apoll_until(lambda: senders.in_flight("four.test") == 4, "four grants")
        while len(senders.tasks) < 60 or senders.pending:
            await apoll_until(lambda: senders.pending, "a grant to answer")
            assert senders.in_flight("four.test") <= 4
            await senders.answer_all("four.test")
    sent = [t.delivery.delivery_id for t in senders.tasks]
    assert sorted(sent) == sorted(d.delivery_id for d in accepted), "each one sent, once"
    assert batches_received() > before, "backlogged deliveries travelled together"


async def test_the_interval_spaces_grants(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=LIMITS)
    async with harness(amqp_url) as (broker, senders, _), running(amqp_url, policy) as svc:
        await owns_all(svc)
        for i in range(4):
            await accept(broker, f"user{i}@spaced.test")
        await apoll_until(lambda: len(senders.tasks) == 4, "four grants")
        granted = sorted(t.granted_at.ToNanoseconds() / 1e9 for t in senders.tasks)
        gaps = [b - a for a, b in itertools.pairwise(granted)]
        assert min(gaps) >= 0.3 - 1e-3, gaps


async def test_a_group_shares_one_limit_across_shards(amqp_url: str, tmp_path: Path) -> None:
    domains = ["a-mobile.test", "b-mobile.test", "c-mobile.test", "d-mobile.test"]
    assert len({shard_for(d, SHARDS) for d in domains}) > 1  # the group spans shards
    policy = write_policy(tmp_path, speed=LIMITS)
    async with harness(amqp_url) as (broker, senders, _), running(amqp_url, policy) as svc:
        await owns_all(svc)
        for i in range(3):
            for domain in domains:
                await accept(broker, f"user{i}@{domain}")
        await apoll_until(lambda: len(senders.pending) == 2, "two grants for the group")
        await steady(lambda: len(senders.pending) == 2, "the group stays at two")
        assert {t.speed_key for t in senders.tasks} == {"group:mobile"}
        assert len({t.shard for t in senders.tasks}) == 1
        for _ in range(12):
            await apoll_until(lambda: senders.pending, "a grant to answer")
            assert len(senders.pending) <= 2
            await senders.answer(next(iter(senders.pending.values())))
        await apoll_until(lambda: len(senders.tasks) == 12 and not senders.pending, "all sent")


async def test_high_priority_overtakes_a_backlog(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=LIMITS, rest=PRIORITY)
    async with harness(amqp_url) as (broker, senders, _), running(amqp_url, policy) as svc:
        await owns_all(svc)
        for i in range(40):
            await accept(broker, f"bulk{i}@one.test", headers={"X-Category": "campaign"})
        await apoll_until(lambda: len(senders.tasks) == 1, "the first grant")
        runtime = svc.ownership.runtimes[shard_for("one.test", SHARDS)]
        await apoll_until(
            lambda: sum(g.backlog.ready for g in runtime.gates.values() if g.backlog) > 20,
            "the backlog queued",
        )
        urgent = await accept(broker, "urgent@one.test", headers={"X-Category": "receipt"})
        position = None
        for answered in range(41):
            await apoll_until(lambda: senders.pending, "a grant")
            task = next(iter(senders.pending.values()))
            if task.delivery.delivery_id == urgent.delivery_id:
                position = answered
                assert task.priority == delivery_pb2.PRIORITY_HIGH
                break
            await senders.answer(task)
        # One grant per result; the ones already waiting in memory (the backlog prefetch, 1
        # here with connections 1) may go first, never the backlog's 30-odd others.
        assert position is not None and position <= 3, position


async def test_a_throttled_domain_does_not_hold_up_others(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=LIMITS)
    async with (
        harness(amqp_url) as (broker, senders, _),
        running(amqp_url, policy, inbound_prefetch=10) as svc,
    ):
        await owns_all(svc)
        # 300 deliveries to a one-connection domain, far more than the inbound prefetch...
        await asyncio.gather(*(accept(broker, f"bulk{i}@one.test") for i in range(300)))
        await apoll_until(lambda: len(senders.tasks) == 1, "the throttled domain's first grant")
        # ...and a delivery to another domain on the same shard still goes at once.
        other = next(
            f"x{i}.test"
            for i in range(100)
            if shard_for(f"x{i}.test", SHARDS) == shard_for("one.test", SHARDS)
        )
        await accept(broker, f"someone@{other}")
        await apoll_until(lambda: senders.for_rcpt(f"someone@{other}"), "the other domain's task")
        assert senders.in_flight("one.test") == 1
