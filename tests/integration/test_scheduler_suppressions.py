"""The scheduler's suppression list from the real bounce service: the initial list read over
gRPC at start (bounce's ``Suppressions.List``, chdb storage), and a bounce service that is not
there yet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from postline.bounce.grpc_server import GrpcServer, SuppressionsServicer
from postline.bounce.store import Store
from postline.bounce.suppressions import SuppressionList
from postline.common.broker import Broker, Topology
from postline.common.broker.topology import EXCHANGE, SUPPRESSION_KEY
from postline.common.clickhouse import apply_migrations
from postline.common.policy import load_policy
from postline.v1 import events_pb2
from tests.integration.scheduler_support import (
    accept,
    harness,
    owns_all,
    running,
    steady,
    write_policy,
)
from tests.polling import apoll_until
from tests.ports import free_port


class Bounce:
    """The bounce service's suppression API, in-process, on a fixed port."""

    def __init__(self, amqp_url: str, tmp_path: Path, port: int) -> None:
        self.amqp_url, self.tmp_path, self.port = amqp_url, tmp_path, port

    async def start(self) -> None:
        self.store = Store(f"chdb://{self.tmp_path / 'clickhouse'}")
        await self.store.run(apply_migrations)
        self.broker = Broker(self.amqp_url, Topology(2))
        await self.broker.connect()
        policy = load_policy(self.tmp_path / "postline.yaml")
        self.suppressions = SuppressionList(self.store, self.broker)
        servicer = SuppressionsServicer(self.suppressions, lambda: policy)
        self.server = GrpcServer(servicer, f"127.0.0.1:{self.port}")
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(0)
        await self.broker.close()
        self.store.close()


@pytest.fixture
async def bounce(amqp_url: str, tmp_path: Path) -> AsyncIterator[Bounce]:
    write_policy(tmp_path)
    service = Bounce(amqp_url, tmp_path, free_port())
    yield service
    if hasattr(service, "server"):
        await service.stop()


async def test_the_initial_list_comes_from_bounce(
    amqp_url: str, tmp_path: Path, bounce: Bounce
) -> None:
    await bounce.start()
    # Another replica's queue for changes (bounce refuses to publish a change nobody gets).
    channel = await bounce.broker.connection.channel()
    other = await channel.declare_queue(exclusive=True)
    await other.bind(EXCHANGE, routing_key=SUPPRESSION_KEY)
    await bounce.suppressions.add("default", "Gone@A.test", "550 5.1.1 user unknown")
    policy = write_policy(tmp_path)
    async with (
        harness(amqp_url) as (broker, senders, events),
        running(amqp_url, policy, bounce_grpc=f"127.0.0.1:{bounce.port}") as svc,
    ):
        # The change above was published before this replica had its queue: only the list
        # read at start can know it.
        await apoll_until(lambda: svc.suppressions.loaded, "the list loaded")
        assert svc.suppressions.is_suppressed("default", "gone@a.test")
        await owns_all(svc)
        blocked = await accept(broker, "gone@a.test")
        failed = await apoll_until(
            lambda: events.of(blocked.delivery_id, events_pb2.DELIVERY_STATUS_FAILED), "failed"
        )
        assert failed[0].error_status == events_pb2.ERROR_STATUS_BLOCKED_ADDRESS
        # Only its failure notice goes out, to the envelope sender.
        await steady(lambda: not senders.for_rcpt("gone@a.test"), "nothing sent to it")


async def test_a_missing_bounce_service_is_waited_for_without_stopping_delivery(
    amqp_url: str, tmp_path: Path, bounce: Bounce
) -> None:
    policy = write_policy(tmp_path)
    async with (
        harness(amqp_url) as (broker, senders, _),
        running(amqp_url, policy, bounce_grpc=f"127.0.0.1:{bounce.port}") as svc,
    ):
        await owns_all(svc)
        assert not svc.suppressions.loaded  # visible in QueueStats and the metrics
        await accept(broker, "someone@a.test")
        await apoll_until(lambda: senders.for_rcpt("someone@a.test"), "delivery goes on")

        await bounce.start()
        await bounce.suppressions.add("default", "late@a.test", "550 5.1.1 user unknown")
        await apoll_until(lambda: svc.suppressions.loaded, "the list loaded on a retry", 20)
        assert svc.suppressions.is_suppressed("default", "late@a.test")
