"""The bounce receiving server over real SMTP: a VERP-addressed DSN becomes a complete
error-log row (published to RabbitMQ) and an unknown user is suppressed (ClickHouse + a
published change); correlation without VERP; complaints; foreign domains refused."""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from postline.bounce.bounces import LINK_WAIT_SECONDS, BounceMails
from postline.bounce.deliveries import MESSAGE_TYPES, Deliveries, KnownDelivery
from postline.bounce.receiver import BounceHandler, start_receiver
from postline.bounce.store import Store
from postline.bounce.suppressions import SuppressionList
from postline.common.broker import Broker, Topology
from postline.common.broker.topology import (
    BOUNCE_DELIVERIES,
    COMPLAINT_KEY,
    DELIVERY_EVENT_KEY,
    ERROR_EVENT_KEY,
    EXCHANGE,
    SUPPRESSION_KEY,
)
from postline.common.clickhouse import apply_migrations
from postline.common.ids import new_id
from postline.common.policy import Policy, load_policy
from postline.common.verp import encode_verp
from postline.v1 import events_pb2
from tests.conftest import DEV_POLICY
from tests.events_support import delivery_event, events_in

RETURN_PATH_DOMAIN = "bounce.example.test"


@dataclass
class Bench:
    broker: Broker
    port: int
    store: Store
    deliveries: Deliveries
    suppressions: SuppressionList
    captured: aio_pika.abc.AbstractQueue
    policy: Policy


@pytest.fixture
async def bench(amqp_url: str, tmp_path: Path) -> AsyncIterator[Bench]:
    store = Store(f"chdb://{tmp_path / 'clickhouse'}")
    await store.run(apply_migrations)
    broker = Broker(amqp_url, Topology(2))
    await broker.connect()
    # A queue of our own sees what the service publishes (error rows, suppression changes).
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    captured = await channel.declare_queue(exclusive=True)
    await captured.bind(EXCHANGE, routing_key=ERROR_EVENT_KEY)
    await captured.bind(EXCHANGE, routing_key=SUPPRESSION_KEY)
    await captured.bind(EXCHANGE, routing_key=COMPLAINT_KEY)
    policy = load_policy(DEV_POLICY)
    deliveries = Deliveries(store)
    suppressions = SuppressionList(store, broker)
    handler = BounceHandler(BounceMails(deliveries, store), suppressions, broker, lambda: policy)
    server = await start_receiver(handler, "127.0.0.1", 0, hostname="bounce.localhost")
    port = server.sockets[0].getsockname()[1]
    try:
        yield Bench(broker, port, store, deliveries, suppressions, captured, policy)
    finally:
        server.close()
        await server.wait_closed()
        await connection.close()
        await broker.close()
        store.close()


async def _queued(
    deliveries: Deliveries, recipient: str, **fields: Any
) -> events_pb2.DeliveryEvent:
    event = _queued_event(recipient, **fields)
    await deliveries.on_event(event, None)  # type: ignore[arg-type]
    return event


def _queued_event(recipient: str, **fields: Any) -> events_pb2.DeliveryEvent:
    """A ``queued`` event of a new delivery (``fields`` override its values)."""
    return delivery_event(recipient, **fields)


def _dsn(recipient: str, status: str, diagnostic: str, original_headers: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.b.test>\r\n"
        "To: bounce@bounce.example.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        "--b1\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.b.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        "--b1\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{original_headers}\r\n"
        "--b1--\r\n"
    ).encode()


def _send(port: int, rcpt: str, message: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("mx.b.test")
        smtp.mail("")
        code, reply = smtp.rcpt(rcpt)
        if code != 250:
            return code, reply
        return smtp.data(message)


async def _take(
    queue: aio_pika.abc.AbstractQueue, count: int, timeout: float = 30.0
) -> dict[str, list[object]]:
    """What was published, once ``count`` messages came (or after ``timeout``)."""
    found: dict[str, list[object]] = {"error": [], "change": [], "complaint": []}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in found.values()) < count and time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        if message.routing_key == ERROR_EVENT_KEY:
            found["error"].extend(events_in(message.body, message.headers))
        elif message.routing_key == COMPLAINT_KEY:
            found["complaint"].append(events_pb2.ComplaintReceived.FromString(message.body))
        else:
            found["change"].append(events_pb2.SuppressionChange.FromString(message.body))
    return found


async def test_a_verp_dsn_becomes_a_complete_error_row_and_a_suppression(bench: Bench) -> None:
    queued = await _queued(bench.deliveries, "Nobody@B.test")
    return_path = encode_verp(queued.delivery_id, RETURN_PATH_DOMAIN)
    dsn = _dsn(
        "nobody@b.test",
        "5.1.1",
        "550 5.1.1 <nobody@b.test>: Recipient address rejected: User unknown",
        # The returned headers say nothing useful: the VERP address alone must do.
        "Subject: (rewritten by a relay)",
    )

    code, _ = await asyncio.to_thread(_send, bench.port, return_path, dsn)
    assert code == 250

    found = await _take(bench.captured, 2)
    [error] = found["error"]
    assert isinstance(error, events_pb2.ErrorClassified)
    assert error.delivery_id == queued.delivery_id
    assert error.status == events_pb2.ERROR_STATUS_UNKNOWN_USER
    assert error.source == events_pb2.ERROR_SOURCE_BOUNCE_MAIL
    assert error.permanent
    assert error.created.seconds > 0
    # Every field of the error log: created, status, from, to, messageId, returnPath,
    # subject, apiData, reason.
    assert getattr(error, "from") == "app@example.test"
    assert error.to == "Nobody@B.test"
    assert error.message_id == queued.message_id
    assert error.header_message_id == queued.header_message_id
    assert error.return_path == return_path
    assert error.subject == "Your order"
    assert error.api_data == "order-42"
    assert "User unknown" in error.reason
    assert (error.reply_code, error.enhanced_status) == (550, "5.1.1")
    assert (error.server, error.api_user) == ("default", "dev")

    [change] = found["change"]
    assert isinstance(change, events_pb2.SuppressionChange)
    assert (change.server, change.address) == ("default", "nobody@b.test")
    assert change.action == events_pb2.SUPPRESSION_ACTION_ADD
    assert change.delivery_id == queued.delivery_id
    assert await bench.suppressions.check("default", "NOBODY@b.test") is not None


async def test_a_bounce_that_overtakes_its_deliverys_record_waits_for_it(bench: Bench) -> None:
    # A destination that bounces at once, while the delivery's `queued` event is still on its
    # way to the bounce service (behind others under load): the row is complete all the same.
    delivery_id = new_id()
    return_path = encode_verp(delivery_id, RETURN_PATH_DOMAIN)
    dsn = _dsn("full@f.test", "5.2.2", "552 5.2.2 Mailbox full", "Subject: (none)")
    sending = asyncio.ensure_future(asyncio.to_thread(_send, bench.port, return_path, dsn))
    await asyncio.sleep(1.0)
    event = _queued_event("full@f.test", delivery_id=delivery_id)
    recording = asyncio.ensure_future(bench.deliveries.on_event(event, None))  # type: ignore[arg-type]
    code, _ = await sending
    assert code == 250
    await recording
    [error] = (await _take(bench.captured, 1))["error"]
    assert isinstance(error, events_pb2.ErrorClassified)
    assert (error.delivery_id, error.api_data, error.subject) == (
        delivery_id,
        "order-42",
        "Your order",
    )


async def test_a_record_waiting_for_its_insert_is_found(bench: Bench) -> None:
    first, second = _queued_event("x@h.test"), _queued_event("y@h.test")
    recording = [
        asyncio.ensure_future(bench.deliveries.on_event(e, None))  # type: ignore[arg-type]
        for e in (first, second)
    ]
    await asyncio.sleep(0)  # the first insert under way, the second row waiting for the next
    for event in (first, second):
        known = await bench.deliveries.by_id(event.delivery_id)
        assert known is not None and (known.recipient, known.api_data) == (
            event.recipient,
            "order-42",
        )
    found = await bench.deliveries.by_message_id(second.header_message_id, "Y@h.test")
    assert found is not None and found.delivery_id == second.delivery_id
    await asyncio.gather(*recording)


async def test_an_old_verp_delivery_with_no_record_keeps_its_id(bench: Bench) -> None:
    # Made long ago (past retention, say): no waiting, and the VERP id still names it.
    delivery_id = "000000000001" + new_id()[12:]
    return_path = encode_verp(delivery_id, RETURN_PATH_DOMAIN)
    dsn = _dsn("full@g.test", "5.2.2", "552 5.2.2 Mailbox full", "Subject: Old")
    started = time.monotonic()
    code, _ = await asyncio.to_thread(_send, bench.port, return_path, dsn)
    assert code == 250
    assert time.monotonic() - started < LINK_WAIT_SECONDS
    [error] = (await _take(bench.captured, 1))["error"]
    assert isinstance(error, events_pb2.ErrorClassified)
    assert (error.delivery_id, error.to, error.subject) == (delivery_id, "full@g.test", "Old")


async def test_without_verp_the_returned_message_id_finds_the_delivery(bench: Bench) -> None:
    queued = await _queued(bench.deliveries, "full@c.test")
    dsn = _dsn(
        "full@c.test",
        "5.2.2",
        "552 5.2.2 Mailbox full",
        f"Message-ID: {queued.header_message_id}\r\nSubject: Your order",
    )

    code, _ = await asyncio.to_thread(_send, bench.port, f"postmaster@{RETURN_PATH_DOMAIN}", dsn)
    assert code == 250

    found = await _take(bench.captured, 1)
    [error] = found["error"]
    assert isinstance(error, events_pb2.ErrorClassified)
    assert error.delivery_id == queued.delivery_id
    assert error.status == events_pb2.ERROR_STATUS_OVER_CAPACITY
    assert error.to == "full@c.test"
    assert error.api_data == "order-42"
    assert await bench.suppressions.check("default", "full@c.test") is None


async def test_an_unknown_bounce_still_becomes_a_row_from_its_own_content(bench: Bench) -> None:
    dsn = _dsn(
        "gone@d.test",
        "5.1.1",
        "550 5.1.1 user unknown",
        "Message-ID: <never-sent@example.test>\r\nSubject: Old news\r\nX-Api-Data: batch-7\r\n"
        "From: App <app@example.test>",
    )
    code, _ = await asyncio.to_thread(_send, bench.port, f"bounces@{RETURN_PATH_DOMAIN}", dsn)
    assert code == 250
    found = await _take(bench.captured, 2)
    [error] = found["error"]
    assert isinstance(error, events_pb2.ErrorClassified)
    assert (error.to, error.subject, error.api_data) == ("gone@d.test", "Old news", "batch-7")
    assert getattr(error, "from") == "app@example.test"
    assert error.delivery_id == ""
    assert error.server == "default"  # the server whose return-path domain received it
    [change] = found["change"]
    assert isinstance(change, events_pb2.SuppressionChange)
    assert change.address == "gone@d.test"


def _arf(recipient: str, subject: str = "Offer") -> bytes:
    return (
        "From: feedback@isp.test\r\nTo: fbl@bounce.example.test\r\nSubject: Abuse report\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; "
        'boundary="f1"\r\n\r\n'
        "--f1\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        "--f1\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: test/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {recipient}\r\n\r\n"
        "--f1\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Subject: {subject}\r\nTo: {recipient}\r\n\r\nHi\r\n"
        "--f1--\r\n"
    ).encode()


async def test_a_complaint_is_recorded_and_published_not_logged_as_an_error(
    bench: Bench,
) -> None:
    code, _ = await asyncio.to_thread(
        _send, bench.port, f"fbl@{RETURN_PATH_DOMAIN}", _arf("reader@e.test")
    )
    assert code == 250
    rows = await bench.store.query(
        "SELECT feedback_type, recipient, server FROM postline.complaints", {}
    )
    assert rows == [{"feedback_type": "abuse", "recipient": "reader@e.test", "server": "default"}]
    found = await _take(bench.captured, 1)
    assert found["error"] == []
    [complaint] = found["complaint"]
    assert isinstance(complaint, events_pb2.ComplaintReceived)
    assert (complaint.feedback_type, complaint.recipient) == ("abuse", "reader@e.test")
    assert (complaint.server, complaint.subject, complaint.delivery_id) == ("default", "Offer", "")
    assert complaint.event_id and complaint.at.seconds > 0


async def test_a_complaint_to_a_verp_address_names_its_delivery(bench: Bench) -> None:
    queued = await _queued(bench.deliveries, "Reader@G.test", subject="Weekly news")
    return_path = encode_verp(queued.delivery_id, RETURN_PATH_DOMAIN)
    code, _ = await asyncio.to_thread(_send, bench.port, return_path, _arf("reader@g.test", "x"))
    assert code == 250
    [complaint] = (await _take(bench.captured, 1))["complaint"]
    assert isinstance(complaint, events_pb2.ComplaintReceived)
    assert complaint.delivery_id == queued.delivery_id
    assert complaint.message_id == queued.message_id
    assert complaint.header_message_id == queued.header_message_id
    assert (complaint.subject, complaint.api_data) == ("Weekly news", "order-42")
    assert (complaint.server, complaint.api_user) == ("default", "dev")
    assert complaint.envelope_from == "app@example.test"


async def test_mail_for_other_domains_is_refused(bench: Bench) -> None:
    code, reply = await asyncio.to_thread(_send, bench.port, "someone@elsewhere.test", b"x")
    assert code == 550
    assert reply.startswith(b"5.7.1")


async def test_every_queued_delivery_of_a_batch_is_recorded(bench: Bench) -> None:
    """Under load the queued events of many deliveries travel in one ``DeliveryEvents``."""
    await bench.broker.consume(BOUNCE_DELIVERIES, MESSAGE_TYPES, bench.deliveries.on_event)
    batch = [_queued_event(f"reader{i}@f.test", subject=f"Issue {i}") for i in range(5)]
    later = _queued_event("later@f.test", status=events_pb2.DELIVERY_STATUS_SUCCEEDED)
    alone = _queued_event("alone@f.test")

    await bench.broker.publish(
        DELIVERY_EVENT_KEY, events_pb2.DeliveryEvents(events=[*batch, later])
    )
    await bench.broker.publish(DELIVERY_EVENT_KEY, alone)

    for event in [*batch, alone]:
        known = await _recorded(bench.deliveries, event.delivery_id)
        assert (known.recipient, known.subject) == (event.recipient, event.subject)
        assert (known.message_id, known.header_message_id) == (
            event.message_id,
            event.header_message_id,
        )
    # Only queued events are recorded (the others add nothing a bounce needs).
    assert await bench.deliveries.by_id(later.delivery_id) is None

    # A bounce for a delivery known from the batch finds it by its VERP address.
    return_path = encode_verp(batch[2].delivery_id, RETURN_PATH_DOMAIN)
    dsn = _dsn("reader2@f.test", "5.2.2", "552 5.2.2 Mailbox full", "Subject: x")
    code, _ = await asyncio.to_thread(_send, bench.port, return_path, dsn)
    assert code == 250
    [error] = (await _take(bench.captured, 1))["error"]
    assert isinstance(error, events_pb2.ErrorClassified)
    assert (error.delivery_id, error.subject) == (batch[2].delivery_id, "Issue 2")


async def _recorded(
    deliveries: Deliveries, delivery_id: str, timeout: float = 30.0
) -> KnownDelivery:
    deadline = time.monotonic() + timeout
    while (known := await deliveries.by_id(delivery_id)) is None:
        assert time.monotonic() < deadline, f"delivery {delivery_id} never recorded"
        await asyncio.sleep(0.1)
    return known


async def test_the_greeting_names_the_service_not_its_library(bench: Bench) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", bench.port)
    try:
        greeting = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    assert greeting == b"220 bounce.localhost Postline ESMTP\r\n"
