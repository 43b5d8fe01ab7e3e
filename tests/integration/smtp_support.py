"""The SMTP relay in-process for tests: its own event loop thread, a real RabbitMQ vhost.

Tests are synchronous clients (smtplib, raw sockets) of a relay served on 127.0.0.1 by a loop in
a background thread, so a test reads like a session: connect, send, look at the reply. What the
relay published is read straight from RabbitMQ (never through the relay's own connection, which
a test may be cutting).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import yaml

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import REPORTS_EVENTS, inbound_queue, urgent_queue
from postline.common.policy import Policy, hash_secret, parse_policy
from postline.common.throttle import AuthThrottle
from postline.ingress.relay import RelayHandler, start_smtp
from postline.v1 import delivery_pb2
from tests.events_support import deliveries_in, events_in
from tests.tls_support import make_ca

T = TypeVar("T")

SHARDS = 2
USER, SECRET = "dev", "dev-secret"
OTHER_USER, OTHER_SECRET = "campaigns", "campaign-secret"
_HASHES = {USER: hash_secret(SECRET), OTHER_USER: hash_secret(OTHER_SECRET)}


def policy(relay: dict[str, Any] | None = None, other: dict[str, Any] | None = None) -> Policy:
    """A policy with server ``default`` (user dev) and, given ``other``, server ``campaigns``."""

    def server(user: str, relay: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "api_users": [{"name": user, "secret": {"argon2": _HASHES[user]}}],
            "relay": relay or {},
            "return_path_domain": "bounce.example.test",
        }

    servers = {"default": server(USER, relay)}
    if other is not None:
        servers["campaigns"] = server(OTHER_USER, other)
    return parse_policy(yaml.safe_dump({"version": 1, "servers": servers}))


class LoopThread:
    """An asyncio loop running in a daemon thread; `run` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Relay:
    """A relay listening on 127.0.0.1:``port``, publishing to ``amqp_url``."""

    amqp_url: str
    policy: Policy
    tls_context: ssl.SSLContext | None = None
    publish_timeout: float = 5.0
    hostname: str = "relay.test"
    throttle: AuthThrottle | None = None
    host: str = "127.0.0.1"
    port: int = 0
    handler: RelayHandler = field(init=False)
    _server: asyncio.Server = field(init=False)

    async def start(self) -> None:
        broker = Broker(self.amqp_url, Topology(SHARDS), publish_timeout=self.publish_timeout)
        await broker.connect()
        self.handler = RelayHandler(broker, self.policy, self.hostname, throttle=self.throttle)
        self._server = await start_smtp(
            self.handler, self.host, self.port, tls_context=self.tls_context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        await self.handler.drain()
        await self.handler.broker.close()


@contextlib.contextmanager
def running_relay(loop: LoopThread, relay: Relay) -> Iterator[Relay]:
    loop.run(relay.start())
    try:
        yield relay
    finally:
        loop.run(relay.stop())


# -- what reached RabbitMQ --------------------------------------------------------------------


async def _count_deliveries(amqp_url: str) -> int:
    """Count the deliveries of every waiting inbound message without taking them (several
    may share a message): fetched unacknowledged, they go back when the connection closes."""
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


async def _count_events(amqp_url: str) -> int:
    """Count the events of every waiting message without taking them: the messages are
    fetched unacknowledged and go back to the queue when the connection closes."""
    connection = await aio_pika.connect(amqp_url)
    count = 0
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(REPORTS_EVENTS, passive=True)
        while (message := await queue.get(fail=False)) is not None:
            count += len(events_in(message.body, message.headers))
        return count
    finally:
        await connection.close()


async def _take_deliveries(amqp_url: str) -> list[delivery_pb2.AcceptedDelivery]:
    connection = await aio_pika.connect(amqp_url)
    found = []
    try:
        channel = await connection.channel()
        for name in [q(k) for k in range(SHARDS) for q in (inbound_queue, urgent_queue)]:
            queue = await channel.declare_queue(name, passive=True)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                found.extend(deliveries_in(message.body, message.headers))
        return found
    finally:
        await connection.close()


def queued_deliveries(loop: LoopThread, amqp_url: str) -> int:
    """How many deliveries wait in the scheduler's inbound queues."""
    return loop.run(_count_deliveries(amqp_url))


def queued_events(loop: LoopThread, amqp_url: str) -> int:
    """How many events wait for reports (several may share a broker message)."""
    return loop.run(_count_events(amqp_url))


def take_deliveries(loop: LoopThread, amqp_url: str) -> list[delivery_pb2.AcceptedDelivery]:
    """Remove and return every delivery of the inbound queues."""
    return loop.run(_take_deliveries(amqp_url))


# -- raw SMTP --------------------------------------------------------------------------------


class RawClient:
    """A line-level SMTP client on a plain socket, for what smtplib will not do."""

    def __init__(self, port: int, source: str = "127.0.0.1", host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=15, source_address=(source, 0))
        self.file = self.sock.makefile("rb")

    def reply(self) -> str:
        """One whole reply (all its lines), as text."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed by the server")
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\n".join(lines)

    def send(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data if data.endswith(b"\r\n") else data + b"\r\n")

    def command(self, line: str) -> str:
        self.send(line)
        return self.reply()

    def closed_by_server(self) -> bool:
        return self.file.read() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# -- a test CA ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertAuthority:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))


def make_test_ca(directory: Path) -> CertAuthority:
    """A CA and a server certificate it signed, for 127.0.0.1 and localhost."""
    files = make_ca(directory, "localhost", "127.0.0.1")
    return CertAuthority(files.ca_file, files.cert_file, files.key_file)


# -- a TCP proxy that can stall or cut the relay's broker connection -----------------------


class BrokerProxy:
    """127.0.0.1:``port`` forwarding to RabbitMQ; `stall`, `cut` and `restore` the link.

    Stalled: bytes are held, nothing reaches the broker or comes back (a slow broker). Cut:
    every connection is closed, held bytes are dropped, new connections are refused at once
    (a broker that is down).
    """

    def __init__(self, target_port: int = 5672) -> None:
        self.target_port = target_port
        self.port = 0
        self._flowing = asyncio.Event()
        self._down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None

    def url(self, amqp_url: str) -> str:
        vhost = amqp_url.rsplit("/", 1)[1]
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    async def start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def stall(self) -> None:
        self._flowing.clear()

    async def cut(self) -> None:
        self._down = True
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        self._flowing.set()  # wake held pipes: they find their writers closed

    async def restore(self) -> None:
        self._down = False
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self._flowing.wait()
            if writer.is_closing():
                return
            writer.write(data)
            await writer.drain()
        writer.close()
