"""The scheduler's and the sender's own work per delivery, in-process, without I/O.

What each service does for one delivery above its libraries, with a realistic delivery (5 KB,
the headers ingress keeps, in an unsampled trace as services run by default) and the e2e
benchmark's policy (the dev policy, the bench domain routed to 127.0.0.1):

- ``scheduler.on_accepted``: the handler of an accepted delivery up to its grant (span,
  suppression, forwarding, first task, prohibited hours, route, speed key), the broker and the
  shard stubs that return at once;
- ``scheduler.on_result``: the handler of a success (span, release, decision, notice check,
  ``succeeded`` event, counters);
- ``sender.attempt``: one attempt (server, envelope, message, destinations, source IP, result)
  over a pool and a session that answer ``250`` at once.

Best of ``--rounds`` timings of ``--calls`` calls each, in µs a call: steady on a shared
machine, unlike CPU per message end to end (bench/README "Round 5").

    .venv/bin/python bench/hotpath/run.py [--calls 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
import yaml

from postline.common.broker.consumer import MessageMeta
from postline.common.ids import new_id
from postline.common.policy.loader import parse_policy
from postline.common.settings import ServiceSettings
from postline.common.submission import prepare_content
from postline.common.telemetry import extract_context, setup_telemetry
from postline.common.timeutil import to_timestamp
from postline.scheduler.handlers import Scheduler
from postline.scheduler.interfaces import GrantOutcome
from postline.scheduler.mx import MxCache
from postline.scheduler.pauses import PausedDomains
from postline.scheduler.suppressions import SuppressionList
from postline.sender import replies
from postline.sender.attempt import Deliverer
from postline.sender.replies import Reply
from postline.v1 import delivery_pb2

ROOT = Path(__file__).resolve().parents[2]
ROUTE = "127.0.0.1"
UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


class StubBroker:
    async def publish(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def publish_event(self, event: Any) -> None:
        pass

    async def publish_events(self, events: Any, *, linger: float = 0.0) -> None:
        pass

    async def publish_delayed(self, *args: Any, **kwargs: Any) -> None:
        pass


class StubShard:
    number = 1

    async def submit(self, task: Any, server: str, limit: Any) -> GrantOutcome:
        return GrantOutcome.GRANTED

    def release(self, task: Any) -> None:
        pass

    def note_held(self, domain: str, delivery_id: str, until: float) -> None:
        pass

    def note_released(self, domain: str, delivery_id: str) -> None:
        pass


class StubSession:
    local_address = ROUTE
    messages = 5
    tls = None
    dropped = False
    accepted = Reply.make((250, "2.0.0 Ok: queued as 4XyZ"), replies.DATA)

    async def send(self, mail_from: str, recipient: str, content: bytes) -> Reply:
        return self.accepted


class StubPool:
    session = StubSession()

    async def acquire(self, key: str, endpoint: Any, *, max_sessions: int) -> Any:
        return self.session, True

    async def release(self, key: str, session: Any, *, max_messages: int) -> None:
        pass

    def discard(self, key: str, session: Any) -> None:
        pass

    def idle_sessions(self, key: str, endpoint: Any) -> int:
        return 1

    def open_sessions(self, key: str, source_ip: str | None = None) -> int:
        return 1


def bench_policy() -> Any:
    data = yaml.safe_load((ROOT / "postline.dev.yaml").read_text())
    data["servers"]["default"]["routes"] = [
        {"match": ["bench.test"], "to": f"{ROUTE}:25", "tls": "none"}
    ]
    return parse_policy(yaml.safe_dump(data))


def delivery() -> delivery_pb2.AcceptedDelivery:
    body = (
        b"From: Sender <sender@example.com>\r\nTo: user@bench.test\r\n"
        b"Subject: bench message\r\nDate: Sat, 5 Dec 2026 17:00:00 +0000\r\n\r\n"
        + (b"x" * 76 + b"\r\n")
        * 66
    )
    content, headers = prepare_content(body, "mx.example")
    accepted = delivery_pb2.AcceptedDelivery(
        delivery_id=new_id(),
        server="default",
        envelope_from="sender@example.com",
        recipient="user@bench.test",
        recipient_domain="bench.test",
        content=content,
        headers=headers,
    )
    accepted.accepted_at.CopyFrom(to_timestamp(time.time()))
    return accepted


async def best(call: Callable[[], Awaitable[Any]], calls: int, rounds: int) -> float:
    for _ in range(min(calls, 200)):
        await call()
    fastest = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            await call()
        fastest = min(fastest, (time.perf_counter() - started) / calls)
    return fastest * 1e6


async def main(calls: int, rounds: int) -> None:
    policy = bench_policy()
    accepted = delivery()
    scheduler = Scheduler(
        StubBroker(),  # type: ignore[arg-type]
        lambda: policy,
        time.time,
        shards=4,
        suppressions=SuppressionList(time.time),
        pauses=PausedDomains(time.time),
        mx=MxCache(time.time),
    )
    shard = StubShard()
    meta = MessageMeta("inbound.1", {"traceparent": UNSAMPLED}, False)
    task = delivery_pb2.DeliveryTask(
        delivery=accepted,
        attempt=1,
        priority=delivery_pb2.PRIORITY_NORMAL,
        route_host=ROUTE,
        route_port=25,
        grant_id=new_id(),
        speed_key="domain:bench.test",
        shard=1,
    )
    result = delivery_pb2.DeliveryResult(
        outcome=delivery_pb2.OUTCOME_SUCCEEDED, reply_code=250, reply_text="Ok", task=task
    )
    deliverer = Deliverer(lambda: policy, None, StubPool())  # type: ignore[arg-type]
    attached = extract_context(meta.headers)  # each handler runs in its message's trace
    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "scheduler.on_accepted": lambda: scheduler.on_accepted(accepted, meta, shard),
        "scheduler.on_result": lambda: scheduler.on_result(result, meta, shard),
        "sender.attempt": lambda: deliverer.attempt(task),
    }
    for name, call in cases.items():
        print(f"{name:24s} {await best(call, calls, rounds):7.1f} µs")
    attached.detach()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    setup_telemetry("hotpath", ServiceSettings(amqp_url="amqp://unused/", policy=Path("unused")))
    logging.getLogger().setLevel(logging.ERROR)  # the lines are not what is measured here
    uvloop.run(main(args.calls, args.rounds))  # the services' event loop
