"""Event publishing: group commit (``Broker.publish_event``) next to one publish per event.

    .venv/bin/python bench/events/publish.py [--events 200000] [--tasks 200] [--in-flight 1,2,4]
                                             [--rounds 3] [--plain-events 50000] [--json]

Each run gets a private RabbitMQ vhost (the local broker, ``rabbitmqctl``) with Postline's
topology, so every delivery event is routed as in production: to ``reports.events`` and
``bounce.deliveries``. ``--tasks`` concurrent tasks publish ``--events`` ready-made
``DeliveryEvent``s between them, each task one after the other and awaiting each confirm, as a
service's handlers do. Timed: from the first publish to the last confirm. Afterwards
``reports.events`` is drained and every event must be there exactly once; the run reports
events/s, the broker messages used and the mean events per message. Then the vhost is deleted.

Runs: group commit at each ``--in-flight`` (publishes of one kind in flight at once), and plain
``Broker.publish`` of each event (the comparison, ``--plain-events`` of them: at a few thousand
a second, 200,000 would take over a minute a round). The modes alternate for ``--rounds``
rounds and the median of each is printed (the machine is shared). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import aio_pika

from postline.common.broker import Broker, EventPublisher, Topology
from postline.common.broker.topology import DELIVERY_EVENT_KEY, REPORTS_EVENTS
from postline.common.ids import new_id
from postline.common.timeutil import to_timestamp
from postline.v1 import events_pb2

Publish = Callable[[events_pb2.DeliveryEvent], Awaitable[None]]


@dataclass
class Run:
    mode: str
    events: int
    tasks: int
    seconds: float
    cpu_seconds: float
    events_per_second: float
    broker_messages: int
    events_per_message: float


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _events(count: int) -> list[events_pb2.DeliveryEvent]:
    """Delivery events shaped like ingress's ``queued`` events (~320 bytes each)."""
    now = to_timestamp(time.time())
    return [
        events_pb2.DeliveryEvent(
            event_id=new_id(),
            delivery_id=new_id(),
            message_id=new_id(),
            status=events_pb2.DELIVERY_STATUS_QUEUED,
            at=now,
            accepted_at=now,
            server="default",
            api_user="dev",
            envelope_from="app@example.test",
            recipient=f"user{i}@example.test",
            recipient_domain="example.test",
            subject="Your order has shipped",
            api_data=f"order-{i}",
            header_message_id=f"<{new_id()}@example.test>",
            trace_id=uuid.uuid4().hex,
        )
        for i in range(count)
    ]


async def _drain(url: str, expected: list[events_pb2.DeliveryEvent]) -> int:
    """Take every message from ``reports.events``; check each event arrived exactly once."""
    connection = await aio_pika.connect(url)
    seen: set[str] = set()
    messages = 0
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.declare_queue(REPORTS_EVENTS, passive=True)
        waiting = queue.declaration_result.message_count
        async with queue.iterator() as incoming:
            async for message in incoming:
                kind = message.headers.get("x-postline-type")
                kind = kind.decode() if isinstance(kind, bytes) else kind
                if kind == "postline.v1.DeliveryEvents":
                    batch = events_pb2.DeliveryEvents.FromString(message.body).events
                else:
                    batch = [events_pb2.DeliveryEvent.FromString(message.body)]
                for event in batch:
                    if event.event_id in seen:
                        raise SystemExit(f"event {event.event_id} arrived twice")
                    seen.add(event.event_id)
                messages += 1
                await message.ack(multiple=True)
                if messages == waiting:
                    break
    finally:
        await connection.close()
    if seen != {e.event_id for e in expected}:
        raise SystemExit(f"{len(expected) - len(seen)} events missing")
    return messages


async def _run(mode: str, events: int, tasks: int, in_flight: int) -> Run:
    vhost = f"postline-bench-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    try:
        broker = Broker(url, Topology(1))
        await broker.connect()
        publish: Publish
        if not in_flight:  # the comparison: one confirmed publish per event

            async def publish(event: events_pb2.DeliveryEvent) -> None:
                await broker.publish(DELIVERY_EVENT_KEY, event)

        else:
            publisher = EventPublisher(broker.publish, max_in_flight=in_flight)
            publish = publisher.publish
        ready = _events(events)
        shares = [ready[i::tasks] for i in range(tasks)]

        async def one_task(share: list[events_pb2.DeliveryEvent]) -> None:
            for event in share:
                await publish(event)

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one_task(share) for share in shares))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        await broker.close()
        messages = await _drain(url, ready)
    finally:
        _rabbitmqctl("delete_vhost", vhost)
    return Run(
        mode,
        events,
        tasks,
        round(seconds, 2),
        round(cpu, 2),
        round(events / seconds),
        messages,
        round(events / messages, 1),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--in-flight", default="1,2,4", help="publishes in flight, per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain-events", type=int, default=50_000, help="0: no plain runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    modes = [
        (f"group commit, {n} in flight", args.events, n)
        for n in map(int, args.in_flight.split(","))
    ]
    if args.plain_events:
        modes.append(("plain Broker.publish", args.plain_events, 0))
    rounds: dict[str, list[Run]] = {mode: [] for mode, _, _ in modes}
    for _ in range(args.rounds):
        for mode, events, in_flight in modes:
            rounds[mode].append(await _run(mode, events, args.tasks, in_flight))
    # The median round of each mode, by rate.
    runs = [sorted(r, key=lambda run: run.events_per_second)[len(r) // 2] for r in rounds.values()]
    if args.json:
        print(json.dumps({"python": platform.python_version(), "runs": [asdict(r) for r in runs]}))
        return
    print(
        f"{'mode (median of ' + str(args.rounds) + ')':<28}{'events/s':>10}{'seconds':>9}"
        f"{'cpu s':>7}{'messages':>10}{'ev/msg':>8}  all rounds, events/s"
    )
    for r in runs:
        print(
            f"{r.mode:<28}{r.events_per_second:>10,}{r.seconds:>9}{r.cpu_seconds:>7}"
            f"{r.broker_messages:>10,}{r.events_per_message:>8}  "
            + " ".join(f"{x.events_per_second:,}" for x in rounds[r.mode])
        )


if __name__ == "__main__":
    asyncio.run(main())
