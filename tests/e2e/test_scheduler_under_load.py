"""The scheduler under load, end to end, on one stack (two schedulers, two senders):

* priority: 5,000 low-priority deliveries to one destination, then one high-priority delivery,
  which reaches the simulator before the backlog drains. The backlog is published straight to
  the scheduler's inbound queues (as ingress would: quicker than 5,000 SMTP recipients, and the
  same test); the urgent mail comes over SMTP. Only the order is asserted; the latency is
  printed for the record (bench/scheduler measures it, see bench/README.md);
* failover: killing the active scheduler mid-run (with that backlog still draining); the
  standby takes its shards over and every delivery still arrives, within its destination's
  connection limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import grpc
import pytest

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import accepted_key, shard_for
from postline.common.ids import new_id
from postline.common.timeutil import to_timestamp
from postline.devstack import Stack
from postline.v1 import delivery_pb2, scheduler_pb2, scheduler_pb2_grpc
from tests.e2e.scheduler_support import Running, arrivals, row, scheduler_stack, send
from tests.polling import poll_until

pytestmark = pytest.mark.e2e

BACKLOG = 5000
DOMAINS = ("one.test", "two.test", "three.test")
PER_DOMAIN = 100
SERVER = {
    "speed": [
        {"match": ["*"], "connections": 20, "interval": "0s", "rate": None},
        # One message per connection: see test_scheduler_policy (senders keep sessions open).
        {"match": list(DOMAINS), "connections": 3, "messages_per_connection": 1},
    ],
    "priority": [
        {"header": "X-Category", "pattern": "^receipt$", "level": "high"},
        {"header": "X-Category", "pattern": "^bulk$", "level": "low"},
    ],
    "prohibited_hours": [],
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("scheduler-load")
    with scheduler_stack(tmp, SERVER, schedulers=2, senders=2, simulator_slow_seconds=0.2) as run:
        yield run


async def publish_backlog(amqp_url: str, shards: int, domain: str, count: int) -> None:
    broker = Broker(amqp_url, Topology(shards))
    await broker.connect()
    content = b"From: app@example.test\r\nSubject: news\r\nX-Category: bulk\r\n\r\nHello.\r\n"
    headers = [
        delivery_pb2.Header(name="Subject", value="news"),
        delivery_pb2.Header(name="X-Category", value="bulk"),
    ]
    message_id, now = new_id(), to_timestamp(time.time())
    key = accepted_key(shard_for(domain, shards))
    try:
        for start in range(0, count, 500):
            await asyncio.gather(
                *(
                    broker.publish(
                        key,
                        delivery_pb2.AcceptedDelivery(
                            delivery_id=new_id(),
                            message_id=message_id,
                            server="default",
                            api_user="dev",
                            envelope_from="app@example.test",
                            recipient=f"bulk+{i}@{domain}",
                            recipient_domain=domain,
                            content=content,
                            headers=headers,
                            subject="news",
                            accepted_at=now,
                        ),
                    )
                    for i in range(start, min(count, start + 500))
                )
            )
    finally:
        await broker.close()


def test_a_high_priority_delivery_overtakes_a_5000_delivery_backlog(system: Running) -> None:
    stack, simulator = system.stack, system.simulator
    asyncio.run(publish_backlog(stack.amqp_url, stack.shards, "backlog.test", BACKLOG))
    sent = time.time()
    send(stack, ["urgent@backlog.test"], {"X-Category": "receipt"})
    urgent = poll_until(
        lambda: simulator.messages(rcpt="urgent@backlog.test"), "the urgent mail", 120
    )
    arrived = urgent[0]["arrived"]
    before = sum(1 for t in arrivals(simulator, "backlog.test") if t < arrived)
    print(f"high priority behind {BACKLOG}: {arrived - sent:.2f}s, after {before} of them")
    assert before < BACKLOG, "the backlog drained first"


def owned_shards(stack: Stack, name: str) -> list[int]:
    number = int(name.partition("-")[2] or 1)
    address = stack.ports.instance(number).scheduler_grpc
    with grpc.insecure_channel(address) as channel:
        stub = scheduler_pb2_grpc.SchedulerAdminStub(channel)
        response = stub.QueueStats(scheduler_pb2.QueueStatsRequest(), timeout=10)
    return list(response.owned_shards)


def test_killing_the_active_scheduler_loses_nothing(system: Running) -> None:
    stack, simulator, reports = system.stack, system.simulator, system.reports
    poll_until(
        lambda: sorted(owned_shards(stack, "scheduler") + owned_shards(stack, "scheduler-2"))
        == list(range(stack.shards)),
        "every shard owned",
    )
    active = max(("scheduler", "scheduler-2"), key=lambda n: len(owned_shards(stack, n)))
    standby = "scheduler-2" if active == "scheduler" else "scheduler"

    recipients = [f"slow+{i}@{d}" for d in DOMAINS for i in range(PER_DOMAIN)]
    send(stack, recipients)
    total = len(recipients)
    poll_until(
        lambda: sum(len(arrivals(simulator, d)) for d in DOMAINS) >= total // 4,
        "a quarter delivered",
        60,
    )
    assert stack.kill(active) == -9
    killed_at = time.time()
    poll_until(
        lambda: owned_shards(stack, standby) == list(range(stack.shards)),
        "the standby owning every shard",
    )
    takeover = time.time() - killed_at
    print(f"takeover after {takeover:.2f}s")

    def delivered() -> set[str]:
        return {r.lower() for m in simulator.messages() for r in m["rcpt_tos"]}

    poll_until(lambda: delivered() >= set(recipients), "every delivery", 120)
    stats = simulator.stats()["domains"]
    for domain in DOMAINS:
        assert stats[domain]["peak_connections"] <= 3, (domain, stats[domain])
    duplicates = sum(stats[d]["messages"] for d in DOMAINS) - total
    print(f"{duplicates} duplicate(s) after the kill (at-least-once)")
    assert reports.get("/api/v1/errors")["results"] == []
    for rcpt in (recipients[0], recipients[-1]):
        poll_until(lambda r=rcpt: row(reports, "/api/v1/deliveries", r, "succeeded"), f"{rcpt} ok")
