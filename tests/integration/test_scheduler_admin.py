"""The admin API over real gRPC: pause/resume a domain, queue statistics from any replica,
explain (the same answer as the offline command), and the ``postline`` commands for them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import grpc
from click.testing import CliRunner

from postline.common.broker.topology import shard_for
from postline.common.cli import main as postline
from postline.common.timeutil import to_timestamp
from postline.v1 import scheduler_pb2, scheduler_pb2_grpc
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

SPEED = """
      - match: [paused.test]
        connections: 1
      - match: [a-mobile.test, b-mobile.test]
        group: mobile
        connections: 5
"""
REST = """
    priority:
      - {header: X-Category, pattern: "^receipt$", level: high}
    prohibited_hours:
      - header: X-Category
        pattern: "^campaign$"
        timezone: Asia/Tokyo
        windows: ["21:00-08:00"]
"""


def _stub(port: int) -> scheduler_pb2_grpc.SchedulerAdminStub:
    return scheduler_pb2_grpc.SchedulerAdminStub(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))


async def test_a_paused_domain_waits_and_goes_on_resume(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=SPEED, rest=REST)
    async with (
        harness(amqp_url) as (broker, senders, _),
        running(amqp_url, policy, pause_recheck=1.0) as svc,
    ):
        await owns_all(svc)
        admin = _stub(svc.grpc_port)
        paused = await admin.PauseDomain(scheduler_pb2.DomainRequest(domain="Paused.test"))
        assert (paused.domain, paused.paused) == ("paused.test", True)
        await admin.PauseDomain(scheduler_pb2.DomainRequest(domain="b-mobile.test"))

        for i in range(3):
            await accept(broker, f"user{i}@paused.test")
            await accept(broker, f"user{i}@b-mobile.test")
            await accept(broker, f"user{i}@a-mobile.test")
        # The other member of the group is not paused.
        await apoll_until(lambda: len(senders.tasks) == 3, "a-mobile.test's tasks")
        await steady(
            lambda: {t.delivery.recipient_domain for t in senders.tasks} == {"a-mobile.test"},
            "nothing to a paused domain",
            1.5,
        )
        stats = await admin.QueueStats(scheduler_pb2.QueueStatsRequest(domain="paused.test"))
        row = stats.domains[0]
        assert (row.domain, row.paused, row.backlog, row.in_flight) == ("paused.test", True, 3, 0)
        assert row.shard == shard_for("paused.test", SHARDS)

        await admin.ResumeDomain(scheduler_pb2.DomainRequest(domain="paused.test"))
        await admin.ResumeDomain(scheduler_pb2.DomainRequest(domain="b-mobile.test"))
        await apoll_until(lambda: senders.for_rcpt("user0@paused.test"), "paused.test resumed")
        await apoll_until(lambda: len(senders.for_rcpt("user0@b-mobile.test")), "the group")
        while len(senders.tasks) < 9:
            await apoll_until(lambda: senders.pending, "a grant")
            await senders.answer_all()
        assert len(senders.tasks) == 9


async def test_pauses_outlive_a_restart(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=SPEED, rest=REST)
    async with harness(amqp_url) as (broker, senders, _):
        async with running(amqp_url, policy) as first:
            await _stub(first.grpc_port).PauseDomain(scheduler_pb2.DomainRequest(domain="x.test"))
        async with running(amqp_url, policy) as second:
            assert second.pauses.is_paused("x.test")
            await owns_all(second)
            await accept(broker, "someone@x.test")
            await steady(lambda: not senders.tasks, "still paused after the restart")


async def test_any_replica_answers_queue_statistics(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=SPEED, rest=REST)
    async with (
        harness(amqp_url) as (broker, senders, _),
        running(amqp_url, policy) as owner,
        running(amqp_url, policy) as standby,
    ):
        await owns_all(owner)
        for i in range(4):
            await accept(broker, f"user{i}@paused.test")
        await apoll_until(lambda: len(senders.tasks) == 1, "one connection in use")

        admin = _stub(standby.grpc_port)

        async def rows() -> list[scheduler_pb2.DomainStats]:
            response = await admin.QueueStats(scheduler_pb2.QueueStatsRequest())
            assert not response.owned_shards  # the standby reads the owner's snapshots
            return [d for d in response.domains if d.domain == "paused.test"]

        for _ in range(100):
            found = await rows()
            if found and found[0].backlog == 3:
                break
            await asyncio.sleep(0.1)
        row = found[0]
        assert (row.in_flight, row.backlog, row.connections) == (1, 3, 1)
        assert row.speed_key == "domain:paused.test" and row.server == "default"


async def test_explain_over_grpc_gives_the_offline_answer(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=SPEED, rest=REST)
    at = datetime(2030, 1, 7, 22, 30, tzinfo=UTC)  # 07:30 in Tokyo: inside 21:00-08:00
    async with running(amqp_url, policy) as svc:
        response = await _stub(svc.grpc_port).Explain(
            scheduler_pb2.ExplainRequest(
                server="default",
                recipient="fan@b-mobile.test",
                headers={"X-Category": "campaign"},
                at=to_timestamp(at.timestamp()),
            )
        )
        assert response.speed_key == "group:mobile"
        window_end = datetime(2030, 1, 7, 23, 0, tzinfo=UTC)  # 08:00 in Tokyo
        assert response.hold_until.ToSeconds() == int(window_end.timestamp())
        assert response.suppression_checked is False  # bounce is not running in this test

        runner = CliRunner()
        common = [
            "policy",
            "explain",
            "--to",
            "fan@b-mobile.test",
            "--header",
            "X-Category: campaign",
            "--at",
            at.isoformat(),
            "--shards",
            str(SHARDS),
            "--json",
        ]
        offline = await asyncio.to_thread(
            runner.invoke, postline, [*common, "--policy", str(policy)]
        )
        online = await asyncio.to_thread(
            runner.invoke, postline, [*common, "--grpc", f"127.0.0.1:{svc.grpc_port}"]
        )
        assert offline.exit_code == 0, offline.output
        assert online.exit_code == 0, online.output
        a, b = json.loads(offline.output), json.loads(online.output)
        # The same decisions and reasons; only the running one may consult the suppression
        # list (here it could not reach bounce, and says so).
        assert a["reasons"][1:] == b["reasons"][1:]
        for key in ("reasons", "suppressed", "suppression_checked"):
            a.pop(key), b.pop(key)
        assert a == b
        assert a["hold_until"] == "2030-01-07T23:00:00+00:00"
        assert a["priority"] == "normal" and a["shard"] == shard_for("group:mobile", SHARDS)


async def test_the_scheduler_commands(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, speed=SPEED, rest=REST)
    async with harness(amqp_url) as (broker, senders, _), running(amqp_url, policy) as svc:
        await owns_all(svc)
        grpc_address = f"127.0.0.1:{svc.grpc_port}"
        runner = CliRunner()

        def run(*args: str) -> str:
            result = runner.invoke(postline, ["scheduler", *args, "--grpc", grpc_address])
            assert result.exit_code == 0, result.output
            return result.output

        assert "paused" in await asyncio.to_thread(run, "pause", "paused.test")
        await accept(broker, "someone@paused.test")
        await apoll_until(
            lambda: svc.ownership.runtimes[shard_for("paused.test", SHARDS)].gates, "queued"
        )
        for _ in range(50):
            table = await asyncio.to_thread(run, "stats")
            if "paused.test (paused)" in table:
                break
            await asyncio.sleep(0.1)
        assert "paused.test (paused)" in table and "domain:paused.test" in table
        output = await asyncio.to_thread(run, "stats", "--json", "--domain", "paused.test")
        data = json.loads(output)
        assert data["domains"][0]["backlog"] == 1 and data["domains"][0]["paused"] is True
        assert "resumed" in await asyncio.to_thread(run, "resume", "paused.test")
        await apoll_until(lambda: senders.for_rcpt("someone@paused.test"), "sent once resumed")
