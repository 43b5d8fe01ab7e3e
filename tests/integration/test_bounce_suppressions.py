"""The suppression list through its gRPC API and the ``postline suppression`` commands:
ClickHouse (chdb) storage, every change published on RabbitMQ, List of every server paged
(what a scheduler loads at start), expiry."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import grpc
import pytest

from postline.bounce.grpc_server import GrpcServer, SuppressionsServicer
from postline.bounce.store import Store
from postline.bounce.suppressions import SuppressionList
from postline.common.broker import Broker, Topology
from postline.common.broker.topology import EXCHANGE, SUPPRESSION_KEY
from postline.common.clickhouse import apply_migrations
from postline.common.policy import parse_policy
from postline.v1 import events_pb2, suppression_pb2, suppression_pb2_grpc

POLICY = """
version: 1
servers:
  transactional:
    return_path_domain: bounce.a.test
  campaigns:
    return_path_domain: bounce.b.test
    blocking: {enabled: true, expire_after: 1d}
"""


@dataclass
class Api:
    address: str
    suppressions: SuppressionList
    changes: aio_pika.abc.AbstractQueue


@pytest.fixture
async def api(amqp_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    store = Store(f"chdb://{tmp_path / 'clickhouse'}")
    await store.run(apply_migrations)
    broker = Broker(amqp_url, Topology(2))
    await broker.connect()
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    changes = await channel.declare_queue(exclusive=True)
    await changes.bind(EXCHANGE, routing_key=SUPPRESSION_KEY)
    policy = parse_policy(POLICY)
    suppressions = SuppressionList(store, broker)
    server = GrpcServer(SuppressionsServicer(suppressions, lambda: policy), "127.0.0.1:0")
    await server.start()
    try:
        yield Api(f"127.0.0.1:{server.port}", suppressions, changes)
    finally:
        await server.stop(0)
        await connection.close()
        await broker.close()
        store.close()


async def _postline(api: Api, *args: str) -> tuple[int, str, str]:
    """Run the real command line in a subprocess (the server keeps serving meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "postline.common.cli", "suppression", "--grpc", api.address, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _changes(queue: aio_pika.abc.AbstractQueue, count: int) -> list[tuple[str, str, int]]:
    found: list[tuple[str, str, int]] = []
    deadline = time.monotonic() + 30
    while len(found) < count and time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        change = events_pb2.SuppressionChange.FromString(message.body)
        found.append((change.server, change.address, change.action))
    return found


async def test_commands_add_check_list_remove_and_publish_each_change(api: Api) -> None:
    code, out, _ = await _postline(api, "add", "--server", "campaigns", "Reader@Example.TEST")
    assert code == 0
    added = json.loads(out)
    assert (added["server"], added["address"], added["expires_at"]) == (
        "campaigns",
        "reader@example.test",
        None,
    )

    code, out, _ = await _postline(api, "check", "--server", "campaigns", "READER@example.test")
    assert code == 0 and json.loads(out)["address"] == "reader@example.test"
    code, out, _ = await _postline(api, "check", "--server", "transactional", "reader@example.test")
    assert code == 1 and "not suppressed" in out

    code, out, err = await _postline(api, "list")
    assert code == 0
    assert [json.loads(line)["address"] for line in out.splitlines()] == ["reader@example.test"]
    assert "1 in all" in err

    code, out, _ = await _postline(api, "remove", "--server", "campaigns", "reader@example.test")
    assert code == 0
    assert await api.suppressions.check("campaigns", "reader@example.test") is None
    code, out, _ = await _postline(api, "remove", "--server", "campaigns", "reader@example.test")
    assert code == 1 and "was not suppressed" in out

    assert await _changes(api.changes, 2) == [
        ("campaigns", "reader@example.test", events_pb2.SUPPRESSION_ACTION_ADD),
        ("campaigns", "reader@example.test", events_pb2.SUPPRESSION_ACTION_REMOVE),
    ]


async def test_bad_requests_are_refused_with_a_reason(api: Api) -> None:
    code, _, err = await _postline(api, "add", "--server", "nope", "a@example.test")
    assert code == 1 and "INVALID_ARGUMENT" in err and "unknown server" in err
    code, _, err = await _postline(api, "add", "--server", "campaigns", "not an address")
    assert code == 1 and "INVALID_ARGUMENT" in err


async def test_list_pages_through_every_server(api: Api) -> None:
    for i in range(5):
        await api.suppressions.add("transactional", f"t{i}@x.test", "test")
    for i in range(3):
        await api.suppressions.add("campaigns", f"c{i}@x.test", "test")
    await api.suppressions.remove("transactional", "t4@x.test")

    seen: list[tuple[str, str]] = []
    async with grpc.aio.insecure_channel(api.address) as channel:
        stub = suppression_pb2_grpc.SuppressionsStub(channel)
        page = 1
        while True:
            answer = await stub.List(
                suppression_pb2.ListSuppressionsRequest(page=page, page_size=3)
            )
            assert answer.total == 7
            seen += [(s.server, s.address) for s in answer.suppressions]
            if not answer.suppressions:
                break
            page += 1
        only = await stub.List(
            suppression_pb2.ListSuppressionsRequest(server="campaigns", address_contains="C1")
        )
    assert page == 4  # 3 + 3 + 1, then an empty page
    assert sorted(seen) == sorted(
        [("transactional", f"t{i}@x.test") for i in range(4)]
        + [("campaigns", f"c{i}@x.test") for i in range(3)]
    )
    assert [s.address for s in only.suppressions] == ["c1@x.test"]


async def test_an_expired_suppression_is_gone(api: Api) -> None:
    # Added 10 s ago for 5 s (the policy's blocking.expire_after), and one for an hour.
    await api.suppressions.add(
        "campaigns", "brief@x.test", "test", expire_after=5, now=time.time() - 10
    )
    await api.suppressions.add("campaigns", "later@x.test", "test", expire_after=3600)
    assert await api.suppressions.check("campaigns", "brief@x.test") is None
    assert await api.suppressions.check("campaigns", "later@x.test") is not None
    entries, total = await api.suppressions.list()
    assert total == 1 and entries[0].expires_at is not None


async def test_expiry_follows_the_clock_that_set_it_not_the_databases(api: Api) -> None:
    # Added in 2030 for 5 s: the bounce service's clock decides when it expires, as the
    # scheduler's copy does (ClickHouse's own clock says 2030 is years away).
    at = datetime(2030, 1, 6, 23, 59, 58, tzinfo=UTC).timestamp()
    await api.suppressions.add("campaigns", "brief@x.test", "test", expire_after=5, now=at)
    assert await api.suppressions.check("campaigns", "brief@x.test", now=at + 4) is not None
    assert (await api.suppressions.list(now=at + 4))[1] == 1
    assert await api.suppressions.check("campaigns", "brief@x.test", now=at + 6) is None
    assert await api.suppressions.list(now=at + 6) == ([], 0)
    assert await api.suppressions.remove("campaigns", "brief@x.test", now=at + 6) is False
