"""Inbound webhooks over real sockets: mail sent over SMTP to the receiving server for an
``inbound`` domain is answered 250 once it is in RabbitMQ, and reaches that domain's webhook
(verified with the Standard Webhooks library) as JSON: envelope, headers, bodies and
attachments, or the raw message; other domains stay refused."""

from __future__ import annotations

import asyncio
import base64
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from postline.bounce.bounces import BounceMails
from postline.bounce.deliveries import Deliveries
from postline.bounce.inbound import InboundMail
from postline.bounce.receiver import BounceHandler, start_receiver
from postline.bounce.store import Store as BounceStore
from postline.bounce.suppressions import SuppressionList
from postline.common.broker import Broker, Topology
from postline.common.clickhouse import apply_migrations
from postline.common.policy import parse_policy
from postline.reports.store import Store
from postline.reports.webhooks.dispatcher import Webhooks
from postline.reports.webhooks.poster import PostSettings
from tests.polling import poll_until
from tests.webhook_support import WebhookReceiver

FAST = PostSettings(batch_size=10, batch_wait=0.1, timeout=5.0, retry_first=0.3, retry_max=1.0)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@dataclass
class Bench:
    port: int
    parsed: WebhookReceiver
    raw: WebhookReceiver


@pytest.fixture
async def bench(
    amqp_url: str,
    tmp_path: Path,
    receivers: tuple[WebhookReceiver, WebhookReceiver],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Bench]:
    parsed, raw = receivers
    monkeypatch.setenv("TEST_INBOUND_PARSED", parsed.secret)
    monkeypatch.setenv("TEST_INBOUND_RAW", raw.secret)
    policy = parse_policy(
        f"""
version: 1
servers:
  default:
    return_path_domain: bounce.example.test
inbound:
  - domain: in.example.test
    url: {parsed.url("/inbound")}
    secret: {{env: TEST_INBOUND_PARSED}}
  - domain: raw.example.test
    url: {raw.url("/raw")}
    secret: {{env: TEST_INBOUND_RAW}}
    format: raw
"""
    )
    # One embedded ClickHouse path per process: both services' tables live in it here.
    bounce_store = BounceStore(f"chdb://{tmp_path / 'clickhouse'}")
    await bounce_store.run(apply_migrations)
    store = Store(f"chdb://{tmp_path / 'clickhouse'}")
    # The bounce service and the reports service, each with its own broker connection.
    bounce_broker = Broker(amqp_url, Topology(2))
    await bounce_broker.connect()
    inbound = InboundMail(bounce_broker)
    await inbound.declare(policy)
    handler = BounceHandler(
        BounceMails(Deliveries(bounce_store), bounce_store),
        SuppressionList(bounce_store, bounce_broker),
        bounce_broker,
        lambda: policy,
        inbound,
    )
    server = await start_receiver(handler, "127.0.0.1", 0, hostname="mx.example.test")
    reports_broker = Broker(amqp_url, Topology(2))
    await reports_broker.connect()
    webhooks = Webhooks(reports_broker, store, policy, FAST)
    await webhooks.start()
    try:
        yield Bench(server.sockets[0].getsockname()[1], parsed, raw)
    finally:
        await webhooks.stop()
        server.close()
        await server.wait_closed()
        await reports_broker.close()
        await bounce_broker.close()
        store.close()
        bounce_store.close()


def _letter() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Customer <customer@outside.test>"
    message["To"] = "Support <support@in.example.test>"
    message["Subject"] = "Order 4711: où est mon colis ?"
    message["Message-ID"] = "<q-4711@outside.test>"
    message.set_content("Where is my parcel?\n")
    message.add_alternative("<p>Where is my <b>parcel</b>?</p>\n", subtype="html")
    message.add_attachment(PNG, maintype="image", subtype="png", filename="receipt.png")
    return message


def _send(port: int, sender: str, rcpts: list[str], content: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("mx.outside.test")
        code, reply = smtp.mail(sender)
        assert code == 250
        for rcpt in rcpts:
            code, reply = smtp.rcpt(rcpt)
            if code != 250:
                return code, reply
        return smtp.data(content)


async def test_a_mail_for_an_inbound_domain_reaches_its_webhook_parsed(bench: Bench) -> None:
    content = _letter().as_bytes().replace(b"\n", b"\r\n")
    code, reply = await asyncio.to_thread(
        _send, bench.port, "customer@outside.test", ["support@in.example.test"], content
    )
    assert code == 250 and reply.startswith(b"2.0.0 Ok: queued as ")
    mail_id = reply.decode().rsplit(" ", 1)[1]

    [received] = await asyncio.to_thread(
        poll_until, lambda: bench.parsed.accepted, "the mail at the inbound webhook"
    )
    assert bench.parsed.bad_signatures == 0
    assert received.payload["type"] == "postline.inbound"
    data = received.payload["data"]
    assert data["id"] == mail_id and data["domain"] == "in.example.test"
    assert data["envelope"]["from"] == "customer@outside.test"
    assert data["envelope"]["to"] == ["support@in.example.test"]
    assert data["envelope"]["helo"] == "mx.outside.test"
    assert data["envelope"]["client_ip"] == "127.0.0.1"
    assert data["subject"] == "Order 4711: où est mon colis ?"
    assert data["from"] == "Customer <customer@outside.test>"
    assert data["message_id_header"] == "<q-4711@outside.test>"
    assert {"name": "Subject", "value": "Order 4711: où est mon colis ?"} in data["headers"]
    assert data["text"] == "Where is my parcel?\n"
    assert data["html"] == "<p>Where is my <b>parcel</b>?</p>\n"
    [attachment] = data["attachments"]
    assert (attachment["filename"], attachment["content_type"]) == ("receipt.png", "image/png")
    assert base64.b64decode(attachment["content"]) == PNG
    assert attachment["size"] == len(PNG)
    assert "raw" not in data
    assert bench.raw.accepted == []


async def test_the_raw_format_delivers_the_message_as_received(bench: Bench) -> None:
    content = _letter().as_bytes().replace(b"\n", b"\r\n")
    rcpts = ["a@raw.example.test", "b@raw.example.test"]
    code, _ = await asyncio.to_thread(_send, bench.port, "", rcpts, content)
    assert code == 250
    [received] = await asyncio.to_thread(
        poll_until, lambda: bench.raw.accepted, "the mail at the raw webhook"
    )
    data = received.payload["data"]
    assert data["envelope"] == {
        "from": "",
        "to": rcpts,
        "client_ip": "127.0.0.1",
        "helo": "mx.outside.test",
    }
    assert base64.b64decode(data["raw"]) == content
    assert "text" not in data and "attachments" not in data


async def test_mail_for_a_domain_in_neither_list_is_refused(bench: Bench) -> None:
    code, reply = await asyncio.to_thread(
        _send, bench.port, "x@outside.test", ["someone@elsewhere.test"], b"Subject: x\r\n\r\nx\r\n"
    )
    assert code == 550 and reply.startswith(b"5.7.1")
