"""Event webhooks: what the fan-out and one endpoint's poster cost the reports process.

    .venv/bin/python bench/webhooks/run.py [--events 100000] [--batch 100] [--rounds 3] [--json]

Each round gets a private RabbitMQ vhost (the local broker, ``rabbitmqctl``) and a temporary
embedded ClickHouse (the attempt log). One endpoint of server ``default`` subscribes to every
event; its receiver is a separate process (a threaded HTTP server that checks nothing but
counts events and answers 200), so its CPU is not counted. First ``--events`` delivery events
are published in ``DeliveryEvents`` of 1,000 (as busy services publish them) into the
fan-out queue; then the dispatcher starts and the round is timed until the receiver counted
every event. Reported: events/s through fan-out and POSTs, the reports process's CPU seconds
per 1,000 events, POSTs made. The median of the rounds is printed (the machine is shared).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import DELIVERY_EVENT_KEY
from postline.common.clickhouse import apply_migrations
from postline.common.ids import new_id
from postline.common.policy import parse_policy
from postline.common.timeutil import to_timestamp
from postline.common.webhooks import new_secret
from postline.reports.store import Store
from postline.reports.webhooks.dispatcher import Webhooks
from postline.reports.webhooks.poster import PostSettings
from postline.v1 import events_pb2


@dataclass
class Run:
    events: int
    batch: int
    seconds: float
    events_per_second: float
    cpu_seconds_per_1000: float
    posts: int


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _receiver(port: Any, counted: Any) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            with counted.get_lock():
                counted.value += len(json.loads(body)["data"]["events"])
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port.value = server.server_address[1]
    server.serve_forever()


def _events(count: int) -> list[events_pb2.DeliveryEvent]:
    now = to_timestamp(time.time())
    statuses = (events_pb2.DELIVERY_STATUS_QUEUED, events_pb2.DELIVERY_STATUS_SUCCEEDED)
    return [
        events_pb2.DeliveryEvent(
            event_id=new_id(),
            delivery_id=new_id(),
            message_id=new_id(),
            status=statuses[i % 2],
            at=now,
            accepted_at=now,
            server="default",
            api_user="dev",
            envelope_from="app@example.test",
            recipient=f"reader{i}@example.jp",
            recipient_domain="example.jp",
            subject="Your order has shipped",
            api_data=f"order-{i}",
            header_message_id=f"<{i}@example.test>",
        )
        for i in range(count)
    ]


async def _until(done: Callable[[], bool]) -> None:
    """Wait for something the receiver process counts (a shared value: no event to await)."""
    while True:
        if done():
            return
        await asyncio.sleep(0.01)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def one_round(events: int, batch: int, port: int, counted: Any) -> Run:
    vhost = f"postline-bench-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    secret = new_secret()
    os.environ["BENCH_WEBHOOK_SECRET"] = secret
    policy = parse_policy(
        "version: 1\nservers:\n  default:\n    return_path_domain: bounce.example.test\n"
        f"    webhooks:\n      - url: http://127.0.0.1:{port}/events\n"
        "        secret: {env: BENCH_WEBHOOK_SECRET}\n"
    )
    settings = PostSettings(batch_size=batch, batch_wait=0.2)
    broker = Broker(f"amqp://guest:guest@127.0.0.1:5672/{vhost}", Topology(4))
    with tempfile.TemporaryDirectory() as data:
        store = Store(f"chdb://{data}/ch")
        try:
            await store.write(apply_migrations)
            await broker.connect()
            # Declare and bind the queues, then let the events wait in the fan-out queue.
            first = Webhooks(broker, store, policy, settings)
            await first.start()
            await first.stop()
            made = _events(events)
            for start in range(0, events, 1000):
                chunk = events_pb2.DeliveryEvents(events=made[start : start + 1000])
                await broker.publish(DELIVERY_EVENT_KEY, chunk)
            counted.value = 0
            cpu, started = _cpu(), time.perf_counter()
            webhooks = Webhooks(broker, store, policy, settings)
            await webhooks.start()
            await _until(lambda: counted.value >= events)
            seconds = time.perf_counter() - started
            cpu = _cpu() - cpu
            posts = sum(p.delivered for p in webhooks.posters)
            await webhooks.stop()
        finally:
            await broker.close()
            store.close()
            _rabbitmqctl("delete_vhost", vhost)
    return Run(events, batch, seconds, events / seconds, cpu / events * 1000, posts)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    port, counted = multiprocessing.Value("i", 0), multiprocessing.Value("q", 0)
    receiver = multiprocessing.Process(target=_receiver, args=(port, counted), daemon=True)
    receiver.start()
    try:
        await _until(lambda: bool(port.value))
        runs = [
            await one_round(args.events, args.batch, port.value, counted)
            for _ in range(args.rounds)
        ]
    finally:
        receiver.terminate()
        receiver.join()
    runs.sort(key=lambda r: r.events_per_second)
    median = runs[len(runs) // 2]
    load = os.getloadavg()[0]
    if args.json:
        print(
            json.dumps({"median": asdict(median), "runs": [asdict(r) for r in runs], "load": load})
        )
        return
    for run in runs:
        print(
            f"{run.events} events, {run.batch}/POST: {run.seconds:.2f} s, "
            f"{run.events_per_second:,.0f} events/s, "
            f"{run.cpu_seconds_per_1000 * 1000:.1f} ms CPU per 1,000 events, {run.posts} POSTs"
        )
    print(
        f"median {median.events_per_second:,.0f} events/s, "
        f"{median.cpu_seconds_per_1000 * 1000:.1f} ms CPU per 1,000 events "
        f"({platform.python_implementation()} {platform.python_version()}, load {load:.1f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
