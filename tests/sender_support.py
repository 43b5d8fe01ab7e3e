"""What the sender's tests share: a local DNS server, a test CA, policies and tasks.

Nothing here stands in for a real part: the DNS server answers real UDP queries (built with
dnspython's message API), the CA makes real certificates the simulator serves over STARTTLS.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import TASK_KEY, results_queue
from postline.common.ids import new_id
from postline.common.policy import Policy, parse_policy
from postline.v1 import delivery_pb2
from tests.events_support import items_in

# -- DNS ---------------------------------------------------------------------------------------


@dataclass
class Zone:
    """Records by (name, type); a name with no record at all answers NXDOMAIN."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    ttl: int = 300

    def add(self, name: str, rdtype: str, *values: str) -> Zone:
        self.records.setdefault((name.lower().rstrip("."), rdtype.upper()), []).extend(values)
        return self

    def exists(self, name: str) -> bool:
        return any(n == name for n, _ in self.records)


class DnsServer(asyncio.DatagramProtocol):
    """A tiny authoritative DNS server on 127.0.0.1 (UDP), counting the queries it gets."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.queries: Counter[tuple[str, str]] = Counter()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        values = self.zone.records.get((name, rdtype))
        if values:
            response.answer.append(
                dns.rrset.from_text(question.name, self.zone.ttl, "IN", rdtype, *values)
            )
        elif not self.zone.exists(name):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


# -- policy and tasks --------------------------------------------------------------------------


def sender_policy(server: str = "", *, pool: tuple[str, ...] = ("127.0.0.1",)) -> Policy:
    """A policy with one server ``default``; ``server`` is YAML added under it."""
    addresses = ", ".join(pool)
    body = textwrap.dedent(
        f"""\
        version: 1
        source_ip_pools:
          default: [{addresses}]
        servers:
          default:
            source_ip_pool: default
            return_path_domain: bounce.example.test
        """
    )
    if server:
        body += textwrap.indent(textwrap.dedent(server), "    ")
    return parse_policy(body, "test.yaml")


def message(
    sender: str = "app@example.test",
    to: str = "someone@a.test",
    subject: str = "hello",
    *,
    extra_headers: str = "",
    body: str = "Hello.\r\n",
) -> bytes:
    return (
        f"Received: from client.example.test ([192.0.2.7]) by app.example.test\r\n"
        f"\tfor <{to}>; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        f"From: Sender <{sender}>\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{new_id()}@example.test>\r\n"
        f"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        f"{extra_headers}"
        f"\r\n{body}"
    ).encode()


def task(
    recipient: str = "someone@a.test",
    *,
    route: tuple[str, int] | None = None,
    tls: delivery_pb2.TlsMode.ValueType = delivery_pb2.TLS_MODE_OPPORTUNISTIC,
    source_ip: str = "",
    envelope_from: str = "app@example.test",
    content: bytes | None = None,
    return_path: str = "",
    shard: int = 0,
) -> delivery_pb2.DeliveryTask:
    domain = recipient.rpartition("@")[2].lower()
    delivery = delivery_pb2.AcceptedDelivery(
        delivery_id=new_id(),
        message_id=new_id(),
        server="default",
        api_user="dev",
        envelope_from=envelope_from,
        recipient=recipient,
        recipient_domain=domain,
        content=content if content is not None else message(envelope_from, recipient),
    )
    return delivery_pb2.DeliveryTask(
        delivery=delivery,
        attempt=1,
        priority=delivery_pb2.PRIORITY_NORMAL,
        route_host=route[0] if route else "",
        route_port=route[1] if route else 0,
        tls=tls,
        source_ip=source_ip,
        speed_key=domain,
        shard=shard,
        return_path=return_path,
    )


# -- processes and the broker, for the tests that run senders as processes ---------------------

SHARDS = 2


def policy_file(directory: Path, simulator_port: int, server: str = "") -> Path:
    """A policy file routing every ``*.test`` domain to the simulator on ``simulator_port``."""
    body = textwrap.dedent(
        f"""\
        version: 1
        source_ip_pools:
          default: [127.0.0.1]
        servers:
          default:
            source_ip_pool: default
            return_path_domain: bounce.example.test
            strip_received_headers: true
            routes:
              - match: ["*.test"]
                to: 127.0.0.1:{simulator_port}
                tls: opportunistic
        """
    )
    if server:
        body += textwrap.indent(textwrap.dedent(server), "    ")
    path = directory / "postline.yaml"
    path.write_text(body)
    return path


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@dataclass
class Process:
    """A child process logging to a file; stopped (or killed) when the test ends."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def simulator_process(directory: Path, smtp_port: int, slow_seconds: float) -> Process:
    args = ["-m", "postline.simulator", "--smtp", f"127.0.0.1:{smtp_port}"]
    args += ["--control", f"127.0.0.1:{smtp_port + 1}", "--slow-seconds", str(slow_seconds)]
    return Process("simulator", args, dict(os.environ), directory / "simulator.log")


def sender_process(
    directory: Path, name: str, amqp_url: str, policy: Path, health_port: int, **settings: str
) -> Process:
    env = {
        **os.environ,
        "POSTLINE_AMQP_URL": amqp_url,
        "POSTLINE_POLICY": str(policy),
        "POSTLINE_SHARDS": str(SHARDS),
        "POSTLINE_HEALTH_LISTEN": f"127.0.0.1:{health_port}",
        "POSTLINE_HOSTNAME": f"{name}.sender.test",
        **{f"POSTLINE_{k.upper()}": v for k, v in settings.items()},
    }
    return Process(name, ["-m", "postline.sender"], env, directory / f"{name}.log")


def publish_tasks(amqp_url: str, tasks: list[delivery_pb2.DeliveryTask]) -> None:
    async def run() -> None:
        broker = Broker(amqp_url, Topology(SHARDS))
        await broker.connect()
        try:
            for t in tasks:
                await broker.publish(TASK_KEY, t, priority=int(t.priority))
        finally:
            await broker.close()

    asyncio.run(run())


def take_results(amqp_url: str) -> list[delivery_pb2.DeliveryResult]:
    """Every result waiting in the scheduler's result queues (removed from them)."""

    async def run() -> list[delivery_pb2.DeliveryResult]:
        connection = await aio_pika.connect(amqp_url)
        found = []
        try:
            channel = await connection.channel()
            for shard in range(SHARDS):
                queue = await channel.get_queue(results_queue(shard), ensure=False)
                while (message := await queue.get(fail=False, no_ack=True)) is not None:
                    found.extend(
                        items_in(message.body, message.headers, delivery_pb2.DeliveryResult)
                    )
        finally:
            await connection.close()
        return found

    return asyncio.run(run())


def queue_depth(amqp_url: str, name: str) -> int:
    """Messages ready in a queue (not counting those delivered and unacked)."""

    async def run() -> int:
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            return int(queue.declaration_result.message_count or 0)
        finally:
            await connection.close()

    return asyncio.run(run())
