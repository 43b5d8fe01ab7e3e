"""Sender throughput into Postfix's smtp-sink, against smtp-source -> smtp-sink as the ceiling.

    .venv/bin/python bench/sender/run.py [--tasks 2000] [--concurrency 1,20,100] [--dkim rsa]
                                         [--senders 1] [--size 2048]

For each concurrency: a private RabbitMQ vhost, N delivery tasks published to sender.tasks
(routed to smtp-sink, as the scheduler would route them), then --senders sender processes
started with POSTLINE_CONCURRENCY=C each. The rate is measured between the first and the
last result published (so start-up is not counted). Then smtp-source sends the same number
of messages of the same size over C parallel sessions (-d: several messages per session, as
the sender reuses them).

Needs smtp-sink/smtp-source (Debian: apt-get install postfix) and RabbitMQ with rabbitmqctl.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path

import aio_pika

from postline.common.broker import Broker, Topology
from postline.common.broker.consumer import decode
from postline.common.broker.groups import unbatch
from postline.common.broker.topology import TASK_KEY, results_queue
from postline.common.ids import new_id
from postline.common.policy import DkimAlgorithm
from postline.sender import dkim_keys
from postline.v1 import delivery_pb2

SHARDS = 1
DOMAINS = 10


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def policy(directory: Path, sink_port: int, dkim: str | None) -> Path:
    text = textwrap.dedent(
        f"""\
        version: 1
        servers:
          default:
            return_path_domain: bounce.example.test
            strip_received_headers: true
            routes:
              - match: ["*.test"]
                to: 127.0.0.1:{sink_port}
                tls: opportunistic
        """
    )
    if dkim:
        algorithm = DkimAlgorithm.RSA_SHA256 if dkim == "rsa" else DkimAlgorithm.ED25519_SHA256
        key = directory / "dkim.pem"
        key.write_bytes(dkim_keys.generate(algorithm))
        text += textwrap.indent(
            textwrap.dedent(
                f"""\
                dkim:
                  - {{domain: example.test, selector: s1, algorithm: {algorithm.value},
                      key: {{file: {key}}}}}
                """
            ),
            "    ",
        )
    path = directory / "postline.yaml"
    path.write_text(text)
    return path


def content(size: int, rcpt: str) -> bytes:
    head = (
        "Received: from app by relay; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        "From: Bench <app@example.test>\r\n"
        f"To: {rcpt}\r\nSubject: bench\r\nMessage-ID: <{new_id()}@example.test>\r\n"
        "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n"
    )
    line = "The quick brown fox jumps over the lazy dog 0123456789.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return (head + body).encode()


def tasks(count: int, size: int) -> list[delivery_pb2.DeliveryTask]:
    out = []
    for i in range(count):
        rcpt = f"user{i}@d{i % DOMAINS}.test"
        delivery = delivery_pb2.AcceptedDelivery(
            delivery_id=new_id(),
            message_id=new_id(),
            server="default",
            envelope_from="app@example.test",
            recipient=rcpt,
            recipient_domain=rcpt.rpartition("@")[2],
            content=content(size, rcpt),
        )
        out.append(delivery_pb2.DeliveryTask(delivery=delivery, attempt=1, shard=0))
    return out


async def publish(url: str, items: list[delivery_pb2.DeliveryTask]) -> None:
    broker = Broker(url, Topology(SHARDS))
    await broker.connect()
    try:
        for start in range(0, len(items), 200):
            await asyncio.gather(*(broker.publish(TASK_KEY, t) for t in items[start : start + 200]))
    finally:
        await broker.close()


async def measure(url: str, count: int, timeout: float) -> tuple[float, int]:
    """(seconds between the first and the last result, results in the first message seen).

    Results are taken off the queue as they come (several may share a broker message)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(results_queue(0), passive=True)
        seen: list[int] = []
        first_at = last_at = 0.0
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal first_at, last_at
            result = decode(message.body, message.headers or {}, delivery_pb2.DeliveryResult)
            items = unbatch(result)
            seen.append(len(items) if items is not None else 1)
            last_at = time.monotonic()
            first_at = first_at or last_at
            await message.ack()
            if sum(seen) >= count:
                done.set()

        await queue.consume(on_message)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{sum(seen)} of {count} results after {timeout}s") from None
        return last_at - first_at, seen[0]
    finally:
        await connection.close()


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def run_sender(args: argparse.Namespace, concurrency: int, work: Path) -> dict[str, float]:
    vhost = f"postline-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = f"{args.amqp.rstrip('/')}/{vhost}"
    try:
        asyncio.run(publish(url, tasks(args.tasks, args.size)))
        env = {
            **os.environ,
            "POSTLINE_AMQP_URL": url,
            "POSTLINE_POLICY": str(policy(work, args.sink_port, args.dkim)),
            "POSTLINE_SHARDS": str(SHARDS),
            "POSTLINE_CONCURRENCY": str(concurrency),
            "POSTLINE_LOG_LEVEL": "WARNING",
        }
        log = open(work / f"sender-{concurrency}.log", "wb")
        ports = [args.health_port + i for i in range(args.senders)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "postline.sender"],
                env={**env, "POSTLINE_HEALTH_LISTEN": f"127.0.0.1:{port}"},
                stdout=log,
                stderr=log,
            )
            for port in ports
        ]
        try:
            seconds, head = asyncio.run(measure(url, args.tasks, timeout=600))
            sessions = sum(metric(port, "postline_sender_smtp_sessions_total") for port in ports)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(30)
            log.close()
        delivered = args.tasks - head
        return {"rate": delivered / seconds, "seconds": seconds, "sessions": sessions}
    finally:
        rabbitmqctl("delete_vhost", vhost)


def run_reference(args: argparse.Namespace, concurrency: int) -> str:
    """smtp-source's rate as text ("failed: ..." when it did not finish)."""
    command = [
        "smtp-source", "-d", "-s", str(concurrency), "-m", str(args.tasks),
        "-l", str(args.size), "-f", "app@example.test", "-t", "user@d0.test",
        f"127.0.0.1:{args.sink_port}",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip()[:80]}"
    return f"{args.tasks / (time.monotonic() - started):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,20,100")
    parser.add_argument("--size", type=int, default=2048, help="message size in bytes")
    parser.add_argument("--dkim", choices=["rsa", "ed25519"], help="sign every message")
    parser.add_argument("--senders", type=int, default=1, help="sender processes, each -c")
    parser.add_argument("--sink-port", type=int, default=12525)
    parser.add_argument("--health-port", type=int, default=19190)
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    for tool in ("smtp-sink", "smtp-source", "rabbitmqctl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (smtp-sink/smtp-source: apt-get install postfix)")
    sink_args = ["smtp-sink", f"127.0.0.1:{args.sink_port}", "1024"]
    if os.geteuid() == 0:
        sink_args[1:1] = ["-u", "nobody"]
    sink = subprocess.Popen(sink_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(
        f"tasks={args.tasks} size={args.size}B dkim={args.dkim or 'no'} "
        f"senders={args.senders} cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
    )
    print("| concurrency | sender tasks/s | SMTP sessions | smtp-source msgs/s |")
    print("|---:|---:|---:|---:|")
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory(prefix="postline-bench-") as tmp:
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                found = run_sender(args, concurrency, Path(tmp))
                reference = run_reference(args, concurrency)
                print(
                    f"| {concurrency} | {found['rate']:.0f} | {found['sessions']:.0f} "
                    f"| {reference} |",
                    flush=True,
                )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
