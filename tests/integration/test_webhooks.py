"""Event webhooks against the real RabbitMQ, embedded ClickHouse and a real HTTP receiver that
verifies every signature with the Standard Webhooks library: each event type reaches the
endpoints that subscribed to it; a dead endpoint gets everything once it answers, across a
restart of the dispatcher; a hanging endpoint holds up no other; a batch retried for the
whole retry period is dead-lettered; every attempt is a row and a metric."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client import REGISTRY

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import (
    COMPLAINT_KEY,
    DEAD_LETTER_QUEUE,
    DELIVERY_EVENT_KEY,
    DELIVERY_OUTCOME_KEY,
    ERROR_EVENT_KEY,
    SUPPRESSION_KEY,
)
from postline.common.clickhouse import apply_migrations
from postline.common.ids import new_id
from postline.common.policy import Policy, hash_secret, parse_policy
from postline.common.runtime import HttpServer
from postline.common.timeutil import to_timestamp
from postline.reports.http import create_app
from postline.reports.queries import ReportQueries
from postline.reports.store import Store
from postline.reports.webhooks.dispatcher import Webhooks
from postline.reports.webhooks.poster import PostSettings
from postline.v1 import events_pb2, webhooks_pb2
from tests.events_support import delivery_event
from tests.polling import apoll_until
from tests.webhook_support import WebhookReceiver

FAST = PostSettings(batch_size=50, batch_wait=0.2, timeout=2.0, retry_first=0.3, retry_max=1.0)
DEV_HASH = hash_secret("dev-secret")


def policy_for(all_events: str, failed_only: str) -> Policy:
    return parse_policy(
        f"""
version: 1
servers:
  default:
    return_path_domain: bounce.example.test
    api_users:
      - {{name: dev, secret: {{argon2: "{DEV_HASH}"}}}}
    webhooks:
      - url: {all_events}
        secret: {{env: TEST_HOOK_ALL}}
      - url: {failed_only}
        events: [failed]
        secret: {{env: TEST_HOOK_FAILED}}
  other:
    return_path_domain: bounce.other.test
"""
    )


@dataclass
class Bench:
    broker: Broker
    store: Store
    all_events: WebhookReceiver
    failed_only: WebhookReceiver
    policy: Policy
    running: list[Webhooks]

    async def start(self, settings: PostSettings = FAST) -> Webhooks:
        webhooks = Webhooks(self.broker, self.store, self.policy, settings)
        await webhooks.start()
        self.running.append(webhooks)
        return webhooks

    async def attempts(self) -> list[dict[str, Any]]:
        return await self.store.query(
            "SELECT endpoint, outcome, attempt, events, event_types, status_code, webhook_id "
            "FROM postline.webhook_attempts ORDER BY at",
            {},
        )


@pytest.fixture
async def bench(
    amqp_url: str,
    tmp_path: Path,
    receivers: tuple[WebhookReceiver, WebhookReceiver],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Bench]:
    all_events, failed_only = receivers
    monkeypatch.setenv("TEST_HOOK_ALL", all_events.secret)
    monkeypatch.setenv("TEST_HOOK_FAILED", failed_only.secret)
    store = Store(f"chdb://{tmp_path / 'clickhouse'}")
    await store.write(apply_migrations)
    broker = Broker(amqp_url, Topology(2))
    await broker.connect()
    bench = Bench(
        broker,
        store,
        all_events,
        failed_only,
        policy_for(all_events.url("/all"), failed_only.url("/failed")),
        [],
    )
    try:
        yield bench
    finally:
        all_events.release()
        failed_only.release()
        for webhooks in bench.running:
            await webhooks.stop()
        await broker.close()
        store.close()


def delivery(status: int, recipient: str = "reader@a.test", **fields: Any) -> Any:
    return delivery_event(recipient, status, header_message_id="<m1@example.test>", **fields)


def bounce_row(**fields: Any) -> events_pb2.ErrorClassified:
    values: dict[str, Any] = dict(
        event_id=new_id(),
        delivery_id="d-bounced",
        message_id="m-bounced",
        created=to_timestamp(time.time()),
        status=events_pb2.ERROR_STATUS_OVER_CAPACITY,
        to="full@b.test",
        header_message_id="<m2@example.test>",
        subject="Letter",
        api_data="letter-7",
        reason="552 5.2.2 mailbox full",
        source=events_pb2.ERROR_SOURCE_BOUNCE_MAIL,
        permanent=True,
        reply_code=552,
        enhanced_status="5.2.2",
        server="default",
        api_user="dev",
        **{"from": "app@example.test"},
    )
    values.update(fields)
    return events_pb2.ErrorClassified(**values)


async def publish_every_kind(broker: Broker) -> dict[str, str]:
    """One event of every type (and some that make none); their ids by type."""
    queued = delivery(events_pb2.DELIVERY_STATUS_QUEUED)
    deferred = delivery(
        events_pb2.DELIVERY_STATUS_DEFERRED,
        attempt=1,
        reply_code=451,
        enhanced_status="4.7.1",
        reason="451 4.7.1 greylisted",
        next_attempt_at=to_timestamp(time.time() + 600),
    )
    succeeded = delivery(events_pb2.DELIVERY_STATUS_SUCCEEDED, attempt=2, reply_code=250)
    failed = delivery(
        events_pb2.DELIVERY_STATUS_FAILED,
        attempt=1,
        reply_code=550,
        enhanced_status="5.1.1",
        reason="550 5.1.1 user unknown",
        error_status=2,
    )
    elsewhere = delivery(events_pb2.DELIVERY_STATUS_FAILED, server="other")  # no webhook there
    await broker.publish(
        DELIVERY_EVENT_KEY,
        events_pb2.DeliveryEvents(events=[queued, deferred, succeeded, failed, elsewhere]),
    )
    bounced = bounce_row()
    smtp_reply = bounce_row(source=events_pb2.ERROR_SOURCE_SMTP_REPLY)  # the failed event says it
    await broker.publish(ERROR_EVENT_KEY, events_pb2.ErrorEvents(events=[bounced, smtp_reply]))
    complaint = events_pb2.ComplaintReceived(
        event_id=new_id(),
        at=to_timestamp(time.time()),
        feedback_type="abuse",
        recipient="angry@c.test",
        server="default",
        delivery_id="d-complained",
        subject="Offer",
    )
    await broker.publish(COMPLAINT_KEY, complaint)
    for action in (events_pb2.SUPPRESSION_ACTION_ADD, events_pb2.SUPPRESSION_ACTION_REMOVE):
        change = events_pb2.SuppressionChange(
            server="default",
            address="gone@d.test",
            action=action,
            reason="550 5.1.1 user unknown",
            at=to_timestamp(time.time()),
            delivery_id="d-gone",
        )
        await broker.publish(SUPPRESSION_KEY, change)
    return {
        "queued": queued.event_id,
        "deferred": deferred.event_id,
        "succeeded": succeeded.event_id,
        "failed": failed.event_id,
        "bounced": bounced.event_id,
        "complained": complaint.event_id,
    }


async def test_each_event_type_reaches_the_endpoints_that_want_it(bench: Bench) -> None:
    await bench.start()
    ids = await publish_every_kind(bench.broker)

    events = await apoll_until(
        lambda: found if len(found := bench.all_events.events()) >= 7 else None,
        "seven events at the endpoint that wants them all",
    )
    by_type = {e["type"]: e for e in events}
    assert sorted(by_type) == sorted([*ids, "suppressed"])
    assert len(events) == 7  # no event of another server, of an SMTP reply, of a removal
    for kind, event_id in ids.items():
        assert by_type[kind]["id"] == event_id
    assert bench.all_events.bad_signatures == 0

    failed = by_type["failed"]
    assert failed["time"].endswith("Z") and failed["server"] == "default"
    assert (failed["api_user"], failed["api_data"]) == ("dev", "order-42")
    assert (failed["sender"], failed["recipient"]) == ("app@example.test", "reader@a.test")
    assert (failed["subject"], failed["message_id_header"]) == ("Your order", "<m1@example.test>")
    assert failed["delivery_id"] and failed["message_id"]
    assert failed["reply"] == {
        "code": 550,
        "enhanced_status": "5.1.1",
        "text": "550 5.1.1 user unknown",
    }
    assert (failed["error_status"], failed["error_name"]) == (2, "Unknown user")
    assert by_type["deferred"]["next_attempt_at"].endswith("Z")
    assert by_type["queued"]["reply"] is None and by_type["queued"]["error_status"] is None
    bounced = by_type["bounced"]
    assert (bounced["recipient"], bounced["error_status"], bounced["permanent"]) == (
        "full@b.test",
        5,
        True,
    )
    assert bounced["reply"]["enhanced_status"] == "5.2.2"
    complained = by_type["complained"]
    assert (complained["feedback_type"], complained["recipient"]) == ("abuse", "angry@c.test")
    suppressed = by_type["suppressed"]
    assert (suppressed["recipient"], suppressed["expires_at"]) == ("gone@d.test", None)
    assert suppressed["delivery_id"] == "d-gone"

    # The second endpoint subscribed to failures only.
    only = await apoll_until(
        lambda: bench.failed_only.events(), "the failure at the second endpoint"
    )
    assert [e["id"] for e in only] == [ids["failed"]]

    payload = bench.all_events.accepted[0].payload
    assert payload["type"] == "postline.events" and payload["timestamp"].endswith("Z")

    async def every_post_logged() -> list[dict[str, Any]] | None:
        rows = await bench.attempts()  # written off the POSTing path, about once a second
        on_all = sum(r["events"] for r in rows if r["endpoint"].endswith("/all"))
        on_failed = any(r["endpoint"].endswith("/failed") for r in rows)
        return rows if on_all >= 7 and on_failed else None

    rows = await apoll_until(every_post_logged, "the attempt rows of both endpoints")
    assert {r["outcome"] for r in rows} == {"delivered"}
    assert sum(r["events"] for r in rows if r["endpoint"].endswith("/all")) == 7


async def test_a_dead_endpoint_gets_everything_once_it_answers(bench: Bench) -> None:
    bench.all_events.answer = 503
    first = await bench.start()
    ids = await publish_every_kind(bench.broker)
    await apoll_until(lambda: bench.all_events.refused >= 2, "the endpoint refusing twice")

    # The reports process dies and comes back while the endpoint is still down: the retries
    # are in RabbitMQ (queues and delay queues), not in the process.
    await first.stop()
    bench.running.remove(first)
    await bench.start()
    await apoll_until(lambda: bench.all_events.refused >= 3, "a refusal after the restart")

    bench.all_events.answer = 200
    await apoll_until(
        lambda: {e["id"] for e in bench.all_events.events()} >= set(ids.values()),
        "every event once the endpoint answers",
    )
    assert {e["type"] for e in bench.all_events.events()} == {*ids, "suppressed"}
    assert bench.all_events.bad_signatures == 0
    # The same webhook-id at every attempt of a batch.
    delivered_ids = {r.webhook_id for r in bench.all_events.accepted}

    async def every_delivery_logged() -> list[dict[str, Any]] | None:
        # Rows are written in order, about once a second: the refusals came before these.
        rows = [r for r in await bench.attempts() if r["endpoint"].endswith("/all")]
        logged = {r["webhook_id"] for r in rows if r["outcome"] == "delivered"}
        return rows if logged >= delivered_ids else None

    rows = await apoll_until(every_delivery_logged, "a row for every delivered batch")
    refused = [r for r in rows if r["outcome"] == "rejected"]
    delivered = [r for r in rows if r["outcome"] == "delivered"]
    assert refused and all(r["status_code"] == 503 for r in refused)
    assert delivered and {r["webhook_id"] for r in delivered} == delivered_ids
    assert any(r["attempt"] > 1 for r in delivered)
    assert {r["webhook_id"] for r in refused} & delivered_ids
    # The reports API shows them too.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{probe.getsockname()[1]}"
    http = HttpServer(create_app(ReportQueries(bench.store, bench.policy)), listen)
    await http.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://{listen}", headers={"Authorization": "Bearer dev:dev-secret"}
        ) as client:
            today = time.strftime("%Y-%m-%d", time.gmtime())
            params = {"start": today, "end": today, "endpoint": "/all", "outcome": "rejected"}
            answer = (await client.get("/api/v1/webhooks/attempts", params=params)).json()
            bad = await client.get("/api/v1/webhooks/attempts", params={**params, "outcome": "x"})
    finally:
        await http.stop()
    assert answer["total"] == len(refused) and answer["page"] == 1
    first = answer["results"][0]
    assert (first["outcome"], first["statusCode"], first["kind"]) == ("rejected", 503, "events")
    assert first["endpoint"] == bench.all_events.url("/all") and first["nextAttemptAt"]
    assert first["webhookId"] in {r["webhook_id"] for r in refused}
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "outcome"

    label = bench.all_events.url("/all")
    metric = "postline_reports_webhook_attempts_total"
    assert (REGISTRY.get_sample_value(metric, {"endpoint": label, "outcome": "rejected"}) or 0) > 0
    assert (REGISTRY.get_sample_value(metric, {"endpoint": label, "outcome": "delivered"}) or 0) > 0


async def test_a_hanging_endpoint_holds_up_no_other(bench: Bench) -> None:
    bench.all_events.answer = "hang"
    await bench.start(PostSettings(batch_size=50, batch_wait=0.2, timeout=30.0))
    ids = await publish_every_kind(bench.broker)
    only = await apoll_until(
        lambda: bench.failed_only.events(), "the failure at the other endpoint"
    )
    assert [e["id"] for e in only] == [ids["failed"]]
    assert bench.all_events.accepted == []  # still hanging on its first request
    bench.all_events.release()
    await apoll_until(lambda: len(bench.all_events.events()) >= 7, "the hanging endpoint's events")


async def test_a_batch_failing_for_the_whole_retry_period_is_dead_lettered(
    bench: Bench, amqp_url: str
) -> None:
    bench.failed_only.answer = 500
    await bench.start(
        PostSettings(
            batch_size=50,
            batch_wait=0.2,
            timeout=2.0,
            retry_first=0.3,
            retry_max=0.5,
            retry_for=2.0,
        )
    )
    await bench.broker.publish(
        DELIVERY_OUTCOME_KEY, delivery(events_pb2.DELIVERY_STATUS_FAILED, subject="Doomed")
    )
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        dead = await channel.declare_queue(DEAD_LETTER_QUEUE, durable=True, passive=True)

        async def dead_batch() -> webhooks_pb2.WebhookBatch | None:
            message = await dead.get(fail=False)
            if message is None:
                return None
            await message.ack()
            return webhooks_pb2.WebhookBatch.FromString(message.body)

        batch = await apoll_until(dead_batch, "the given-up batch in postline.dead", every=0.2)
    finally:
        await connection.close()
    assert batch.attempts >= 2 and batch.webhook_id
    assert [e.subject for e in batch.events] == ["Doomed"]

    async def expiry_logged() -> list[str] | None:
        rows = await bench.attempts()  # written off the POSTing path, about once a second
        outcomes = [r["outcome"] for r in rows if r["endpoint"].endswith("/failed")]
        return outcomes if "expired" in outcomes else None

    outcomes = await apoll_until(expiry_logged, "the expired attempt's row")
    assert outcomes[-1] == "expired" and "rejected" in outcomes


async def test_with_quorum_queues_the_webhook_queues_are_quorum_too(
    amqp_url: str,
    tmp_path: Path,
    receivers: tuple[WebhookReceiver, WebhookReceiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    all_events, failed_only = receivers
    monkeypatch.setenv("TEST_HOOK_ALL", all_events.secret)
    monkeypatch.setenv("TEST_HOOK_FAILED", failed_only.secret)
    store = Store(f"chdb://{tmp_path / 'clickhouse'}")
    await store.write(apply_migrations)
    broker = Broker(amqp_url, Topology(2, "quorum"))  # declares webhooks.fanout as quorum
    await broker.connect()
    webhooks = Webhooks(
        broker, store, policy_for(all_events.url("/all"), failed_only.url("/failed")), FAST
    )
    try:
        await webhooks.start()  # the same arguments again: no PRECONDITION_FAILED
        await broker.publish(DELIVERY_OUTCOME_KEY, delivery(events_pb2.DELIVERY_STATUS_FAILED))
        await apoll_until(lambda: failed_only.events(), "the failure at its endpoint")
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        # Declaring an existing queue with other arguments is refused (PRECONDITION_FAILED):
        # this succeeds only if every endpoint queue is a quorum queue.
        for poster in webhooks.posters:
            await channel.declare_queue(
                poster.endpoint.queue,
                durable=True,
                arguments=broker.topology.arguments(
                    {"x-dead-letter-exchange": "postline.dlx", "x-single-active-consumer": True}
                ),
            )
        await connection.close()
    finally:
        await webhooks.stop()
        await broker.close()
        store.close()
