"""The scheduler harness itself (``scheduler_support``): one delivery the whole way."""

from __future__ import annotations

from pathlib import Path

from postline.common.broker.topology import shard_for
from postline.v1 import events_pb2
from tests.integration.scheduler_support import (
    SHARDS,
    accept,
    harness,
    owns_all,
    running,
    write_policy,
)
from tests.polling import apoll_until

# --- the happy path ---------------------------------------------------------------------------


async def test_an_accepted_delivery_is_granted_sent_and_succeeds(
    amqp_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path)
    async with harness(amqp_url) as (broker, senders, events), running(amqp_url, policy) as svc:
        await owns_all(svc)
        delivery = await accept(broker, "someone@a.test")
        task = (await apoll_until(lambda: senders.for_rcpt("someone@a.test"), "the task"))[0]
        assert task.attempt == 1
        assert task.grant_id and task.speed_key == "domain:a.test"
        assert task.shard == shard_for("a.test", SHARDS)
        assert (task.route_host, task.route_port) == ("127.0.0.1", 2600)
        runtime = svc.ownership.runtimes[task.shard]
        await apoll_until(
            lambda: task.grant_id in runtime.book.leases, "the lease held by the owner"
        )

        await senders.answer(task)
        await apoll_until(
            lambda: events.of(delivery.delivery_id, events_pb2.DELIVERY_STATUS_SUCCEEDED),
            "the succeeded event",
        )
        await apoll_until(lambda: not runtime.book.leases, "the lease acked")
        gate = next(iter(runtime.gates.values()))
        assert not gate.state.in_flight
