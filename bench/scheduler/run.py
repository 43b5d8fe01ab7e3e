"""Scheduler benchmarks on the whole system (every service a process, the destination
simulator counting arrivals):

    .venv/bin/python bench/scheduler/run.py [--backlog 50000] [--urgent 20] [--drain]
                                            [--rate 240] [--arrivals 121] [--senders 3]
                                            [--port-offset 12000] [--skip-limits]

* priority: --backlog low-priority deliveries to one destination (20 connections), published
  straight to the scheduler's inbound queue as ingress would (in batches, as its group commit
  does), then --urgent high-priority mails over SMTP, one every half second: their latency
  (SMTP 250 to arrival at the simulator: p50, p99, max) and how much of the backlog had arrived
  before the first;
* rate: --arrivals deliveries to a destination limited to --rate per minute: the rate measured
  between the first and the last arrival;
* connections: 200 deliveries to a destination limited to 2 connections, each answered after
  0.15 s (the simulator's slow@): the peak of simultaneous connections it saw, and the rate.

Needs RabbitMQ (rabbitmqctl). Each part runs on one fresh stack in a private vhost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import accepted_key, shard_for
from postline.common.ids import new_id
from postline.common.timeutil import to_timestamp
from postline.devstack import Ports, Stack
from postline.simulator.client import SimulatorClient
from postline.v1 import delivery_pb2

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 2


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def stack(offset: int, senders: int, rate: int) -> Iterator[tuple[Stack, SimulatorClient]]:
    vhost = f"postline-bench-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    ports = Ports(offset=offset)
    with tempfile.TemporaryDirectory(prefix="postline-bench-") as tmp:
        data = yaml.safe_load((ROOT / "postline.dev.yaml").read_text())
        server = data["servers"]["default"]
        server["routes"] = [{"match": ["*.test"], "to": ports.simulator}]
        server["prohibited_hours"] = []
        server["speed"] = [
            {"match": ["*"], "connections": 20, "interval": "0s", "rate": None},
            {"match": ["conn2.test"], "connections": 2, "messages_per_connection": 1},
            {"match": ["rate.test"], "rate": f"{rate}/min"},
        ]
        server["priority"] = [
            {"header": "X-Category", "pattern": "^receipt$", "level": "high"},
            {"header": "X-Category", "pattern": "^bulk$", "level": "low"},
        ]
        policy = Path(tmp) / "postline.yaml"
        policy.write_text(yaml.safe_dump(data, sort_keys=False))
        running = Stack(
            policy=policy,
            data_dir=Path(tmp) / "var",
            amqp_url=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            ports=ports,
            shards=SHARDS,
            log_dir=Path(tmp) / "logs",
            senders=senders,
            simulator_slow_seconds=0.15,
        )
        try:
            running.start(timeout=180)
            yield running, SimulatorClient(f"http://{ports.simulator_control}")
        finally:
            running.stop()
            rabbitmqctl("delete_vhost", vhost)


def send(running: Stack, recipients: list[str], headers: dict[str, str]) -> float:
    """One message to every recipient over SMTP; returns when the 250 came."""
    host, port = running.ports.smtp.rsplit(":", 1)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    message = f"From: app@example.test\r\nSubject: bench\r\n{head}\r\nHello.\r\n".encode()
    with smtplib.SMTP(host, int(port), timeout=120) as smtp:
        smtp.login("dev", "dev-secret")
        smtp.sendmail("app@example.test", recipients, message)
    return time.time()


async def publish(url: str, domain: str, count: int) -> None:
    broker = Broker(url, Topology(SHARDS))
    await broker.connect()
    headers = [delivery_pb2.Header(name="X-Category", value="bulk")]
    message_id, now = new_id(), to_timestamp(time.time())
    try:
        for start in range(0, count, 500):
            await asyncio.gather(
                *(
                    broker.publish_grouped(
                        accepted_key(shard_for(domain, SHARDS)),
                        delivery_pb2.AcceptedDelivery(
                            delivery_id=new_id(),
                            message_id=message_id,
                            server="default",
                            api_user="dev",
                            envelope_from="app@example.test",
                            recipient=f"bulk+{i}@{domain}",
                            recipient_domain=domain,
                            content=b"Subject: bench\r\nX-Category: bulk\r\n\r\nHello.\r\n",
                            headers=headers,
                            accepted_at=now,
                        ),
                    )
                    for i in range(start, min(count, start + 500))
                )
            )
    finally:
        await broker.close()


def wait(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError("the benchmark did not finish in time")


def arrivals(simulator: SimulatorClient, domain: str) -> list[float]:
    stats = simulator.stats()["domains"].get(domain)
    return sorted(stats["arrivals"]) if stats else []


def priority(
    running: Stack, simulator: SimulatorClient, backlog: int, urgent: int, drain: bool
) -> dict[str, Any]:
    started = time.time()
    asyncio.run(publish(running.amqp_url, "backlog.test", backlog))
    published = time.time() - started
    sent: dict[str, float] = {}
    for i in range(urgent):
        address = f"urgent+{i}@backlog.test"
        sent[address] = send(running, [address], {"X-Category": "receipt"})
        time.sleep(0.5)
    latencies = []
    for address, at in sent.items():
        found = wait(lambda a=address: simulator.messages(rcpt=a), 600)  # type: ignore[misc]
        latencies.append(found[0]["arrived"] - at)
    first = min(sent.values())
    before = sum(1 for t in arrivals(simulator, "backlog.test") if t < first + latencies[0])
    ordered = sorted(latencies)
    result: dict[str, Any] = {
        "backlog": backlog,
        "backlog_published_s": round(published, 1),
        "urgent_mails": urgent,
        "high_priority_latency_s": {
            "p50": round(ordered[len(ordered) // 2], 2),
            "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
            "max": round(ordered[-1], 2),
        },
        "backlog_arrived_before_the_first": before,
        "backlog_left_when_the_last_arrived": backlog - len(arrivals(simulator, "backlog.test")),
    }
    if drain:
        wait(lambda: len(arrivals(simulator, "backlog.test")) >= backlog, 3600)
        times = arrivals(simulator, "backlog.test")
        result["backlog_drained_after_s"] = round(times[-1] - first, 1)
        result["backlog_rate_per_s"] = round((len(times) - 1) / (times[-1] - times[0]), 1)
    return result


def rate(running: Stack, simulator: SimulatorClient, limit: int, count: int) -> dict[str, Any]:
    send(running, [f"user+{i}@rate.test" for i in range(count)], {})
    wait(lambda: len(arrivals(simulator, "rate.test")) >= count, count * 60 / limit + 120)
    times = arrivals(simulator, "rate.test")
    measured = (len(times) - 1) / (times[-1] - times[0]) * 60
    return {
        "limit_per_min": limit,
        "arrivals": len(times),
        "measured_per_min": round(measured, 1),
        "error_pct": round((measured - limit) / limit * 100, 2),
        "max_in_one_second": max(sum(1 for u in times if t <= u < t + 1) for t in times),
    }


def connections(running: Stack, simulator: SimulatorClient) -> dict[str, Any]:
    send(running, [f"slow+{i}@conn2.test" for i in range(200)], {})
    wait(lambda: len(arrivals(simulator, "conn2.test")) >= 200, 600)
    stats = simulator.stats()["domains"]["conn2.test"]
    times = sorted(stats["arrivals"])
    return {
        "limit": 2,
        "deliveries": stats["messages"],
        "peak_connections": stats["peak_connections"],
        "per_s": round((len(times) - 1) / (times[-1] - times[0]), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=50000)
    parser.add_argument("--urgent", type=int, default=20, help="high-priority mails")
    parser.add_argument(
        "--drain", action=argparse.BooleanOptionalAction, default=False, help="wait for it all"
    )
    parser.add_argument("--skip-limits", action="store_true", help="only the priority part")
    parser.add_argument("--rate", type=int, default=240, help="per minute")
    parser.add_argument("--arrivals", type=int, default=121)
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--port-offset", type=int, default=12000)
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    if not args.skip_limits:
        with stack(args.port_offset, args.senders, args.rate) as (running, simulator):
            results["connections"] = connections(running, simulator)
            results["rate"] = rate(running, simulator, args.rate, args.arrivals)
    with stack(args.port_offset, args.senders, args.rate) as (running, simulator):
        results["priority"] = priority(running, simulator, args.backlog, args.urgent, args.drain)
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
