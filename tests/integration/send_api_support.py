"""The send API in-process for tests: a real RabbitMQ vhost, the app on an ASGI client.

What the API published is read straight from RabbitMQ on a connection of the test's own.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage, MIMEPart
from typing import Any

import aio_pika
import httpx
import yaml
from fastapi import FastAPI

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import REPORTS_EVENTS, inbound_queue, urgent_queue
from postline.common.policy import Policy, hash_secret, parse_policy
from postline.ingress.api import SendApi
from postline.ingress.http import create_app
from postline.v1 import delivery_pb2, events_pb2, send_pb2
from tests.events_support import deliveries_in, events_in

SHARDS = 2
USER, SECRET = "dev", "dev-secret"
REMOTE_USER = "remote"  # server default, allowed from 192.0.2.0/24 only
OTHER_USER = "campaigner"  # server campaigns, allowed from anywhere
MAX_RECIPIENTS = 5
MAX_MESSAGE_SIZE = 64 * 1024
_HASH = hash_secret(SECRET)


def policy() -> Policy:
    """Server ``default`` (users dev, remote; small limits) and server ``campaigns``."""

    def user(name: str, *allowed: str) -> dict[str, Any]:
        found: dict[str, Any] = {"name": name, "secret": {"argon2": _HASH}}
        if allowed:
            found["allowed_ips"] = list(allowed)
        return found

    servers = {
        "default": {
            "api_users": [
                user(USER, "127.0.0.0/8", "::1/128"),
                user(REMOTE_USER, "192.0.2.0/24"),
            ],
            "relay": {"max_recipients": MAX_RECIPIENTS, "max_message_size": MAX_MESSAGE_SIZE},
            "return_path_domain": "bounce.example.test",
            "priority": [{"header": "X-Category", "pattern": "^receipt$", "level": "high"}],
        },
        "campaigns": {
            "api_users": [user(OTHER_USER)],
            "return_path_domain": "bounce.example.test",
        },
    }
    return parse_policy(yaml.safe_dump({"version": 1, "servers": servers}))


def bearer(user: str = USER, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}:{secret}"}


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def parsed(content: bytes) -> EmailMessage:
    """The message as the stdlib reads it (line ends made LF, so bodies compare as text)."""
    lf = content.replace(b"\r\n", b"\n")
    message = email.message_from_bytes(lf, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(part: MIMEPart) -> str:
    """A text part's content with LF line ends (base64 text carries canonical CRLF inside)."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


@dataclass
class Harness:
    broker: Broker
    api: SendApi
    app: FastAPI
    client: httpx.AsyncClient


@contextlib.asynccontextmanager
async def harness(
    amqp_url: str | None = None, *, client_ip: str = "127.0.0.1"
) -> AsyncIterator[Harness]:
    """The ingress app on an in-process client coming from ``client_ip``.

    Without ``amqp_url`` the broker is never connected: every publish fails, so a test of a
    refusal needs no vhost, and a request that got as far as publishing would answer 503.
    """
    broker = Broker(amqp_url or "amqp://unused/", Topology(SHARDS), publish_timeout=5.0)
    if amqp_url is not None:
        await broker.connect()
    api = SendApi(broker, policy(), "ingress.test")
    app = create_app(broker, api)
    transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ingress.test") as client:
            yield Harness(broker, api, app, client)
    finally:
        await broker.close()


# -- what reached RabbitMQ --------------------------------------------------------------------


async def inbound_count(amqp_url: str) -> int:
    """Deliveries waiting in every scheduler shard's inbound queue (several may share a
    message: fetched unacknowledged, they go back when the connection closes)."""
    connection = await aio_pika.connect(amqp_url)
    count = 0
    try:
        channel = await connection.channel()
        for name in [q(k) for k in range(SHARDS) for q in (inbound_queue, urgent_queue)]:
            queue = await channel.declare_queue(name, passive=True)
            while (message := await queue.get(fail=False)) is not None:
                count += len(deliveries_in(message.body, message.headers))
        return count
    finally:
        await connection.close()


async def _take_messages(
    amqp_url: str, names: list[str]
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    messages = []
    try:
        channel = await connection.channel()
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                messages.append(message)
        return messages
    finally:
        await connection.close()


async def take_deliveries_from(amqp_url: str, queue: str) -> list[delivery_pb2.AcceptedDelivery]:
    """Remove and return every delivery waiting in one queue."""
    messages = await _take_messages(amqp_url, [queue])
    return [d for m in messages for d in deliveries_in(m.body, m.headers)]


async def take_deliveries(amqp_url: str) -> list[delivery_pb2.AcceptedDelivery]:
    """Remove and return every delivery waiting in the inbound queues."""
    messages = await _take_messages(
        amqp_url, [q(k) for k in range(SHARDS) for q in (inbound_queue, urgent_queue)]
    )
    return [d for m in messages for d in deliveries_in(m.body, m.headers)]


async def take_events(amqp_url: str) -> list[events_pb2.DeliveryEvent]:
    """Remove and return every delivery event waiting for reports (alone or batched)."""
    found = []
    for message in await _take_messages(amqp_url, [REPORTS_EVENTS]):
        for event in events_in(message.body, message.headers):
            assert isinstance(event, events_pb2.DeliveryEvent)
            found.append(event)
    return found


# --- a message to send, over HTTP and over gRPC ----------------------------------------------


def message(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": "shop@example.test",
        "to": ["alice@a.test"],
        "subject": "Your order",
        "text": "Hello Alice.",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


AUTH = (("authorization", f"Bearer {USER}:{SECRET}"),)


def request(**fields: object) -> send_pb2.SendRequest:
    values: dict[str, object] = {
        "from": "shop@example.test",
        "to": ["alice@a.test"],
        "subject": "Hi",
        "text": "Hello.",
    }
    values.update(fields)
    return send_pb2.SendRequest(**values)  # type: ignore[arg-type]
