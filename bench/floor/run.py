"""The floor: the least CPU per message the parts Postline's design requires can cost here.

    .venv/bin/python bench/floor/run.py [--messages 3000] [--rounds 3] [--together] [--json FILE]

Issue #13 asks Postline end to end to be at least as fast as a Postfix relay on this 2-core
machine. Postline's processes are many and each does more than the bare minimum, so this
script measures each part the design and its guarantees require *alone*, with the libraries
(and versions) Postline pins, and adds them up along the shortest path a message can take:

* **accept**: an SMTP server on aiosmtpd whose handler only keeps the message, loaded by
  Postfix's ``smtp-source`` (20 sessions, 5 KB, one message per connection, as
  ``bench/e2e``); beside it Postline's own relay (``RelayHandler`` and its SMTP protocol,
  policy, limits, the ``accepted`` log line) with a broker that only encodes what it is given;
* **broker hops**: aio-pika publishing persistent messages with publisher confirms (awaited
  before the next, as every Postline publish is) to a durable classic queue on a RabbitMQ node
  of its own, consumed by another process with manual acks: deliveries of 5 KB in batches
  (ingress's group commit), the same one by one, tasks one by one through a priority queue
  (``sender.tasks``), results and events (small, batched);
* **delivery**: aiosmtplib sending 5 KB messages the way Postline's sender does (MAIL, RCPT,
  DATA by ``execute_command``, the data written to the transport) over reused connections
  (100 messages per connection, 20 at once) to Postfix's ``smtp-sink``;
* **events**: the reports service's own ``Ingest.write`` into embedded ClickHouse (chdb), a
  delivery's two events (``queued``, ``succeeded``), at several batch sizes;
* **codec**: the protobuf decodes and encodes the scheduler and the sender cannot avoid;
* **Postfix**: ``bench/e2e``'s Postfix relay run, fewer messages, in the same session;
* **together** (``--together``): the same parts as one bare pipeline of four processes
  (aiosmtpd ingress publishing by group commit, a scheduler turning each delivery into a task
  and each result into an event, a sender delivering over reused connections to
  ``bench/e2e``'s sink, reports writing the events into chdb once a second), each ack after
  what it produced was confirmed or written, loaded as ``bench/e2e`` loads a side: what the
  parts cost when they share the two cores, and how fast they go next to Postfix.

Every figure is CPU seconds (user + system, every thread) per 1,000 messages of the processes
involved, RabbitMQ's ``beam.smp`` included, taken from ``/proc`` over the timed part only;
parts alternate for ``--rounds`` rounds and the medians are summed. Ports from
``--ports-base`` (21000): the SMTP servers +1 and +2, ``smtp-sink`` +3, Postfix +25, its sink
+26, the RabbitMQ node +672 and +673. Every process it starts is stopped before it exits.
Not part of the test suite; figures in ``bench/README.md`` (End to end, "Round 4: the
floor").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from postfix_relay import POSTLINE_RELAY_POLICY, wait_for_smtp  # noqa: E402

PYTHON = sys.executable
TOOLS = ("smtp-source", "smtp-sink", "postfix", "rabbitmqctl", "rabbitmq-server")
FROM, TO = "app@example.test", "rcpt@bench.test"
SIZE = 5120
SESSIONS = 20
EXCHANGE = "floor"
TYPE_HEADER = "x-postline-type"  # what Postline's messages carry besides a traceparent
TRACEPARENT = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"


def load_e2e() -> ModuleType:
    """``bench/e2e/run.py`` (its RabbitMQ node, Postfix run and /proc helpers), as a module."""
    spec = importlib.util.spec_from_file_location("e2e_run", ROOT / "bench" / "e2e" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["e2e_run"] = module
    spec.loader.exec_module(module)
    return module


# --- the sum (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a delivery's path: a measured part, taken ``units`` times, each of its
    processes standing for a Postline process (``roles``: the part's name -> Postline's)."""

    label: str
    part: str
    units: float
    roles: Mapping[str, str]


def hop(publisher: str, consumer: str) -> dict[str, str]:
    return {"publisher": publisher, "consumer": consumer, "rabbitmq": "rabbitmq"}


# One delivery's minimum path. Hops count the publisher's, the consumer's and RabbitMQ's CPU;
# a delivery makes two events (queued by ingress, succeeded by the scheduler), each carried to
# reports and ingested. Tasks go one per broker message in Postline's design (competing
# senders, a priority each); ``GROUPED`` is the same path with tasks grouped like the other
# hops, to show what that choice costs.
PATH: tuple[Step, ...] = (
    Step("accept (SMTP server, keeps the message)", "accept", 1, {"server": "ingress"}),
    Step(
        "hop ingress -> scheduler (5 KB, group commit)",
        "hop deliveries batched",
        1,
        hop("ingress", "scheduler"),
    ),
    Step(
        "hop scheduler -> sender (5 KB task, priority queue, one per message)",
        "hop tasks",
        1,
        hop("scheduler", "sender"),
    ),
    Step(
        "hop sender -> scheduler (result, group commit)",
        "hop results batched",
        1,
        hop("sender", "scheduler"),
    ),
    Step("codec (decodes, encodes)", "codec", 1, {"scheduler+sender": "scheduler"}),
    Step("delivery (SMTP client)", "send", 1, {"client": "sender"}),
    Step("queued event to reports", "hop events batched", 1, hop("ingress", "reports")),
    Step("succeeded event to reports", "hop events batched", 1, hop("scheduler", "reports")),
    Step("2 events ingested into ClickHouse", "ingest", 2, {"reports": "reports"}),
)
GROUPED: tuple[Step, ...] = tuple(
    Step("hop scheduler -> sender (5 KB tasks, grouped)", "hop tasks batched", 1, s.roles)
    if s.part == "hop tasks"
    else s
    for s in PATH
)


def floor_sum(
    figures: Mapping[str, Mapping[str, float]], path: tuple[Step, ...] = PATH
) -> dict[str, Any]:
    """Per message (ms of CPU): each step of ``path`` from ``figures`` (part -> its processes'
    ms per unit), the same by Postline process, and the total. A step whose part was not
    measured is listed as missing, not counted as zero; a part's processes that stand for no
    Postline process (the load's smtp-source, the destination's sink) are not counted."""
    steps: dict[str, float] = {}
    processes: dict[str, float] = {}
    missing: list[str] = []
    for step in path:
        measured = figures.get(step.part)
        if measured is None:
            missing.append(step.label)
            continue
        cost = 0.0
        for role, process in step.roles.items():
            share = measured.get(role, 0.0) * step.units
            processes[process] = processes.get(process, 0.0) + share
            cost += share
        steps[step.label] = round(cost, 3)
    return {
        "steps": steps,
        "processes": {name: round(ms, 3) for name, ms in processes.items()},
        "total_ms": round(sum(steps.values()), 3),
        "missing": missing,
    }


def budget_ms(rate: float, cores: int = 2) -> float:
    """CPU per message that ``cores`` cores allow at ``rate`` messages per second."""
    return round(cores * 1000.0 / rate, 3)


# --- CPU from /proc ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """Time on a CPU of a live process, every thread summed, in nanoseconds' resolution
    (``/proc/<pid>/task/*/schedstat``; ``/proc/<pid>/stat`` counts in 10 ms ticks, too coarse
    for the cheaper parts). Threads that ended are not counted: the processes measured keep
    theirs (RabbitMQ's schedulers, the event loop, the executor's threads)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[0])
    return total / 1e9


class Meter:
    """CPU of named processes between ``start`` and ``stop``."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.before: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        return {n: cpu_seconds(p) - self.before[n] for n, p in self.pids.items()}


# --- workers (this script, ``--role``): each a process of its own --------------------------


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def wait_line(expected: str) -> None:
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != expected:
        raise SystemExit(f"expected {expected!r} from the parent, got {line!r}")


async def warm_then_measured(
    load: Callable[[int], Awaitable[None]], warm: int, messages: int
) -> None:
    """A load-making worker's side of the talk with the parent: the warm-up, then "warm"; on
    "go" the measured load, then "done"; then it waits for "quit"."""
    await load(warm)
    say("warm")
    await wait_line("go")
    await load(messages)
    say("done")
    await wait_line("quit")


async def role_accept(params: dict[str, Any]) -> None:
    """An SMTP server on aiosmtpd: ``bare`` keeps the message and answers 250; ``postline``
    is ingress's relay with a broker that only encodes (no RabbitMQ)."""
    loop = asyncio.get_running_loop()
    host, port = "127.0.0.1", int(params["port"])
    if params["kind"] == "bare":
        from aiosmtpd.smtp import SMTP

        class Keep:
            def __init__(self) -> None:
                self.kept = 0
                self.last = b""

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                self.last = envelope.original_content or b""
                self.kept += 1
                return "250 2.0.0 Ok: queued"

        handler = Keep()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="floor.localhost", loop=loop), host, port
        )
    else:
        from postline.common.broker import Topology
        from postline.common.policy.loader import load_policy
        from postline.ingress.relay import RelayHandler, start_smtp

        class EncodeOnly:
            """What ingress hands its broker, encoded as a publish would, and dropped."""

            def __init__(self) -> None:
                self.topology = Topology(4)
                self.published = 0

            async def publish_grouped(self, routing_key: str, message: Any) -> None:
                message.SerializeToString()
                self.published += 1

            async def publish_events(self, events: Any, *, linger: float = 0.0) -> None:
                for event in events:
                    event.SerializeToString()

        logging.basicConfig(
            filename=params["log"],
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        policy = load_policy(params["policy"])
        relay = RelayHandler(EncodeOnly(), lambda: policy, "floor.localhost")  # type: ignore[arg-type]
        server = await start_smtp(relay, host, port, tls_context=None)
    say("ready")
    await wait_line("quit")
    server.close()


async def role_publisher(params: dict[str, Any]) -> None:
    """Persistent messages of ``batch`` items of ``size`` bytes, ``in_flight`` publishers each
    awaiting its confirm before the next (as every Postline publish is awaited)."""
    import aio_pika

    batch, in_flight = int(params["batch"]), int(params["in_flight"])
    body = b"x" * (int(params["size"]) * batch)
    connection = await aio_pika.connect(params["url"])
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(EXCHANGE)
    priority = 1 if params["priority"] else None

    async def publish(messages: int) -> None:
        async def one_lane(count: int) -> None:
            for _ in range(count):
                message = aio_pika.Message(
                    body,
                    content_type="application/x-protobuf",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    priority=priority,
                    headers={TYPE_HEADER: "postline.v1.Floor", "traceparent": TRACEPARENT},
                )
                await exchange.publish(message, routing_key=params["key"], mandatory=True)

        each, extra = divmod(messages, in_flight)
        await asyncio.gather(*(one_lane(each + (i < extra)) for i in range(in_flight)))

    await warm_then_measured(publish, int(params["warm_messages"]), int(params["messages"]))
    await connection.close()


async def role_consumer(params: dict[str, Any]) -> None:
    """Declares the exchange and a durable classic queue (a priority queue with
    ``priority``), consumes with manual acks, one ack per message as Postline's consumers."""
    import aio_pika

    warm, total = int(params["warm_messages"]), int(params["warm_messages"] + params["messages"])
    connection = await aio_pika.connect(params["url"])
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=int(params["prefetch"]))
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    arguments: dict[str, Any] = {"x-max-priority": 3} if params["priority"] else {}
    queue = await channel.declare_queue(params["queue"], durable=True, arguments=arguments)
    await queue.bind(exchange, routing_key=params["key"])
    received = 0
    warmed, finished = asyncio.Event(), asyncio.Event()

    async def on_message(message: Any) -> None:
        nonlocal received
        await message.ack()
        received += 1
        if received == warm:
            warmed.set()
        if received == total:
            finished.set()

    await queue.consume(on_message)
    say("ready")
    await warmed.wait()
    say("warm")
    await finished.wait()
    say("done")
    await wait_line("quit")
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()


async def role_sender(params: dict[str, Any]) -> None:
    """aiosmtplib as Postline's sender drives it: connect and EHLO once per connection, then per
    message MAIL, RCPT, DATA (``execute_command``), the data written to the transport and the
    reply to the final dot read; ``per_connection`` messages a connection, ``connections`` at
    once."""
    import aiosmtplib

    port = int(params["port"])
    per_connection, connections = int(params["per_connection"]), int(params["connections"])
    line = b"X" * 78 + b"\r\n"
    data = (
        f"From: <{FROM}>\r\nTo: <{TO}>\r\nSubject: floor\r\n\r\n".encode()
        + line * (SIZE // len(line))
        + b".\r\n"
    )

    async def session(count: int) -> None:
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, local_hostname="floor.localhost", start_tls=False
        )
        await client.connect()
        await client.ehlo()
        for _ in range(count):
            for command in (
                (b"MAIL", b"FROM:<" + FROM.encode() + b">"),
                (
                    b"RCPT",
                    b"TO:<" + TO.encode() + b">",
                ),
            ):
                reply = await client.execute_command(*command)
                if reply.code != 250:
                    raise RuntimeError(reply)
            reply = await client.execute_command(b"DATA")
            if reply.code != 354:
                raise RuntimeError(reply)
            protocol = client.protocol
            assert protocol is not None
            protocol.write(data)
            await protocol._drain_helper()
            reply = await protocol.read_response(timeout=60)
            if reply.code != 250:
                raise RuntimeError(reply)
        await client.quit()

    async def send(messages: int) -> None:
        counts: list[int] = []
        while messages > 0:
            counts.append(min(per_connection, messages))
            messages -= counts[-1]
        gate = asyncio.Semaphore(connections)

        async def gated(count: int) -> None:
            async with gate:
                await session(count)

        await asyncio.gather(*(gated(c) for c in counts))

    await warm_then_measured(send, int(params["warm"]), int(params["messages"]))


def migrated_ingest(path: str) -> Any:
    """The reports service's ``Ingest`` on a fresh embedded ClickHouse with the whole schema."""
    from postline.common.clickhouse import apply_migrations, connect
    from postline.reports.ingest import Ingest
    from postline.reports.store import Store

    dsn = f"chdb://{path}"
    client = connect(dsn)
    apply_migrations(client)
    client.close()
    return Ingest(Store(dsn))


def role_ingest(params: dict[str, Any]) -> None:
    """The reports service's ``Ingest.write`` into a fresh embedded ClickHouse: ``events``
    events (a ``queued`` and a ``succeeded`` per delivery), 5 to a broker message, in batches
    of ``batch`` events. Prints the CPU seconds of this process (ClickHouse's threads
    included) over the writes and a 2-second settle (background merges)."""
    from postline.common.events import delivery_event, queued_event
    from postline.common.timeutil import to_timestamp
    from postline.reports.ingest import Raw
    from postline.v1 import delivery_pb2, events_pb2

    ingest = migrated_ingest(params["path"])
    now = time.time()
    events: list[Any] = []
    for n in range(int(params["events"]) // 2):
        delivery = delivery_pb2.AcceptedDelivery(
            delivery_id=f"d{n:012d}-floor",
            message_id=f"m{n:012d}-floor",
            server="bench",
            envelope_from=FROM,
            recipient=f"user{n}@bench.test",
            recipient_domain="bench.test",
            subject=f"floor {n}",
            accepted_at=to_timestamp(now),
            header_message_id=f"<{n}@bench.localhost>",
        )
        events.append(queued_event(delivery))
        events.append(
            delivery_event(
                delivery,
                events_pb2.DELIVERY_STATUS_SUCCEEDED,
                now + 1,
                attempt=1,
                reason="250 2.0.0 Ok: queued as 1234",
            )
        )
    per_message, batch = 5, int(params["batch"])
    raws: list[Raw] = [
        (
            events_pb2.DeliveryEvents.DESCRIPTOR.full_name,
            events_pb2.DeliveryEvents(events=events[i : i + per_message]).SerializeToString(),
        )
        for i in range(0, len(events), per_message)
    ]
    step = max(1, batch // per_message)
    batches = [raws[i : i + step] for i in range(0, len(raws), step)]

    async def write() -> int:
        return sum([await ingest.write(b) for b in batches])

    started = time.process_time()
    written = asyncio.run(write())
    time.sleep(2.0)
    cpu = time.process_time() - started
    ingest.store.close()
    say(json.dumps({"events": written, "batches": len(batches), "cpu_seconds": cpu}))


def role_codec(params: dict[str, Any]) -> None:
    """The protobuf work no design can skip, per delivery: the scheduler decodes the accepted
    delivery (batched) and encodes a task; the sender decodes the task and encodes a result; the
    scheduler decodes the result (batched) and encodes a ``succeeded`` event."""
    from postline.common.events import delivery_event
    from postline.v1 import delivery_pb2, events_pb2

    content = b"X" * SIZE
    delivery = delivery_pb2.AcceptedDelivery(
        delivery_id="d" * 26,
        message_id="m" * 26,
        server="bench",
        envelope_from=FROM,
        recipient=TO,
        recipient_domain="bench.test",
        content=content,
        subject="floor",
    )
    accepted = delivery_pb2.AcceptedDeliveries(deliveries=[delivery] * 8).SerializeToString()
    result = delivery_pb2.DeliveryResult(reply_code=250, reply_text="2.0.0 Ok", mx_host="sink")
    result.task.delivery.CopyFrom(delivery)
    result.task.delivery.ClearField("content")  # a delivered result carries no content
    results = delivery_pb2.DeliveryResults(results=[result] * 8).SerializeToString()
    rounds = int(params["messages"]) // 8
    started = time.process_time()
    for _ in range(rounds):
        batch = delivery_pb2.AcceptedDeliveries.FromString(accepted)
        for item in batch.deliveries:
            wire = delivery_pb2.DeliveryTask(delivery=item, attempt=1).SerializeToString()
            task = delivery_pb2.DeliveryTask.FromString(wire)  # at the sender
            done = delivery_pb2.DeliveryResult(reply_code=250, reply_text="2.0.0 Ok")
            done.task.CopyFrom(task)
            done.task.delivery.ClearField("content")
            done.SerializeToString()
        for outcome in delivery_pb2.DeliveryResults.FromString(results).results:
            delivery_event(
                delivery, events_pb2.DELIVERY_STATUS_SUCCEEDED, 0.0, result=outcome, attempt=1
            ).SerializeToString()
    cpu = time.process_time() - started
    say(json.dumps({"deliveries": rounds * 8, "cpu_seconds": cpu}))


# --- together: the same parts as one bare pipeline -----------------------------------------

TOGETHER = "floor.together"  # its exchange; queues: ``<prefix>.<kind>``, bound by ``<kind>``


def pack(items: list[bytes]) -> bytes:
    """Items in one broker message, each after its length."""
    return b"".join(len(item).to_bytes(4, "big") + item for item in items)


def unpack(body: bytes) -> list[bytes]:
    items, at = [], 0
    while at < len(body):
        size = int.from_bytes(body[at : at + 4], "big")
        items.append(body[at + 4 : at + 4 + size])
        at += 4 + size
    return items


class GroupCommit:
    """Items to one routing key: alone when idle, else together with those that arrived while
    the previous publish was in flight (one in flight); each caller returns once the message
    carrying its item was confirmed (as Postline's ``broker/groups.py``, bare)."""

    def __init__(
        self,
        exchange: Any,
        key: str,
        max_items: int = 100,
        packer: Callable[[list[bytes]], bytes] = pack,
    ) -> None:
        self.exchange, self.key, self.max_items, self.pack = exchange, key, max_items, packer
        self.waiting: list[tuple[bytes, asyncio.Future[None]]] = []
        self.busy = False
        self.drainer: asyncio.Future[None] | None = None

    async def publish(self, item: bytes) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, done))
        if not self.busy:
            self.busy = True
            self.drainer = asyncio.ensure_future(self._drain())
        await done

    async def _drain(self) -> None:
        import aio_pika

        try:
            while self.waiting:
                batch = self.waiting[: self.max_items]
                del self.waiting[: self.max_items]
                message = aio_pika.Message(
                    self.pack([item for item, _ in batch]),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers={TYPE_HEADER: "postline.v1.Floor", "traceparent": TRACEPARENT},
                )
                try:
                    await self.exchange.publish(message, routing_key=self.key, mandatory=True)
                except Exception as exc:
                    for _, done in batch:
                        done.set_exception(exc)
                else:
                    for _, done in batch:
                        done.set_result(None)
        finally:
            self.busy = False


def pack_events(items: list[bytes]) -> bytes:
    """Serialized ``DeliveryEvent``s as one ``DeliveryEvents`` (field 1, repeated): what
    reports' ingest takes as it is."""
    from postline.reports.ingest import varint

    return b"".join(b"\x0a" + varint(len(item)) + item for item in items)


class Events:
    """A process's delivery events (``queued`` or ``succeeded``), each its own ids, published
    by group commit as ``DeliveryEvents``."""

    def __init__(self, exchange: Any, status: str) -> None:
        from postline.common.events import delivery_event
        from postline.v1 import delivery_pb2, events_pb2

        self.group = GroupCommit(exchange, "event", packer=pack_events)
        self.make, self.pb = delivery_event, delivery_pb2
        self.status = getattr(events_pb2, f"DELIVERY_STATUS_{status.upper()}")
        self.prefix = f"{status}-{os.getpid()}-"
        self.count = 0

    async def publish(self) -> None:
        self.count += 1
        delivery = self.pb.AcceptedDelivery(
            delivery_id=f"{self.prefix}{self.count}",
            message_id=f"{self.prefix}{self.count}",
            server="bench",
            envelope_from=FROM,
            recipient=TO,
            recipient_domain="bench.test",
            subject="floor",
        )
        event = self.make(delivery, self.status, time.time(), attempt=1)
        await self.group.publish(event.SerializeToString())


async def together_broker(params: dict[str, Any], prefetch: int) -> tuple[Any, Any, Any]:
    """A connection, a publishing channel with confirms and its exchange, and a consuming
    channel with ``prefetch``."""
    import aio_pika

    connection = await aio_pika.connect(params["url"])
    publishing = await connection.channel(publisher_confirms=True)
    exchange = await publishing.get_exchange(TOGETHER)
    consuming = await connection.channel()
    await consuming.set_qos(prefetch_count=prefetch)
    return connection, exchange, consuming


def handle_in_tasks(work: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A consumer callback running ``work(message)`` in a task of its own (messages of one
    queue are handled concurrently, up to the prefetch)."""
    running: set[asyncio.Task[Any]] = set()

    async def on_message(message: Any) -> None:
        task = asyncio.ensure_future(work(message))
        running.add(task)
        task.add_done_callback(running.discard)

    return on_message


async def role_t_ingress(params: dict[str, Any]) -> None:
    """aiosmtpd; a message's ``250`` after the confirm of the (grouped) persistent publish of
    its content; its ``queued`` event published (grouped) in the background."""
    from aiosmtpd.smtp import SMTP

    connection, exchange, _ = await together_broker(params, 1)
    deliveries = GroupCommit(exchange, "accepted")
    events = Events(exchange, "queued")
    background: set[asyncio.Future[None]] = set()

    class Relay:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await deliveries.publish(envelope.original_content or b"")
            queued = asyncio.ensure_future(events.publish())
            background.add(queued)
            queued.add_done_callback(background.discard)
            return "250 2.0.0 Ok: queued"

    loop = asyncio.get_running_loop()
    relay = Relay()
    server = await loop.create_server(
        lambda: SMTP(relay, hostname="floor.localhost", loop=loop), "127.0.0.1", params["port"]
    )
    say("ready")
    await wait_line("quit")
    server.close()
    await connection.close()


async def role_t_scheduler(params: dict[str, Any]) -> None:
    """Takes the accepted deliveries (grouped) and publishes a task per delivery (one per
    broker message, priority queue; with ``group_tasks`` by group commit, at most 20 to a
    message), acking once every task was confirmed; takes the results
    (grouped) and publishes a ``succeeded`` event per result (grouped), acking after."""
    import aio_pika

    connection, exchange, consuming = await together_broker(params, 200)
    events = Events(exchange, "succeeded")
    grouped = GroupCommit(exchange, "task", max_items=SESSIONS)  # with ``group_tasks``

    async def task(content: bytes) -> None:
        if params["group_tasks"]:
            await grouped.publish(content)
            return
        message = aio_pika.Message(
            content,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=1,
            headers={TYPE_HEADER: "postline.v1.Floor", "traceparent": TRACEPARENT},
        )
        await exchange.publish(message, routing_key="task", mandatory=True)

    async def accepted(message: Any) -> None:
        await asyncio.gather(*(task(item) for item in unpack(message.body)))
        await message.ack()

    async def results(message: Any) -> None:
        await asyncio.gather(*(events.publish() for _ in unpack(message.body)))
        await message.ack()

    prefix = params["prefix"]
    await (await consuming.get_queue(f"{prefix}.accepted")).consume(handle_in_tasks(accepted))
    await (await consuming.get_queue(f"{prefix}.result")).consume(handle_in_tasks(results))
    say("ready")
    await wait_line("quit")
    await connection.close()


async def role_t_sender(params: dict[str, Any]) -> None:
    """Takes a task, sends its content over one of 20 reused connections (100 messages each)
    as the sender part does, publishes its result (grouped) and acks once it was confirmed."""
    import aiosmtplib

    connection, exchange, consuming = await together_broker(params, SESSIONS)
    results = GroupCommit(exchange, "result")
    result = b"r" * 300
    idle: asyncio.Queue[tuple[Any, int]] = asyncio.Queue()

    async def session() -> tuple[Any, int]:
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=params["sink_port"],
            local_hostname="floor.localhost",
            start_tls=False,
        )
        await client.connect()
        await client.ehlo()
        return client, 0

    for _ in range(SESSIONS):
        idle.put_nowait(await session())

    async def send_one(content: bytes) -> None:
        client, sent = await idle.get()
        if sent >= 100:
            await client.quit()
            client, sent = await session()
        for command in (
            (b"MAIL", b"FROM:<" + FROM.encode() + b">"),
            (b"RCPT", b"TO:<" + TO.encode() + b">"),
        ):
            await client.execute_command(*command)
        await client.execute_command(b"DATA")
        if not content.endswith(b"\r\n"):
            content += b"\r\n"
        client.protocol.write(content.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        await client.protocol._drain_helper()
        reply = await client.protocol.read_response(timeout=60)
        idle.put_nowait((client, sent + 1))
        if reply.code != 250:
            raise RuntimeError(reply)
        await results.publish(result)

    async def send(message: Any) -> None:
        contents = unpack(message.body) if params["group_tasks"] else [message.body]
        await asyncio.gather(*(send_one(content) for content in contents))
        await message.ack()

    queue = await consuming.get_queue(f"{params['prefix']}.task")
    await queue.consume(handle_in_tasks(send))
    say("ready")
    await wait_line("quit")
    await connection.close()


async def role_t_reports(params: dict[str, Any]) -> None:
    """Takes the events and writes what arrived each second (``POSTLINE_BATCH_WAIT``) with
    reports' own ``Ingest.write`` into embedded ClickHouse, then acks those messages."""
    from postline.v1 import events_pb2

    ingest = migrated_ingest(params["clickhouse"])
    name = events_pb2.DeliveryEvents.DESCRIPTOR.full_name
    connection, _, consuming = await together_broker(params, 2000)
    pending: list[Any] = []
    written = 0

    async def on_message(message: Any) -> None:
        pending.append(message)

    async def writer() -> None:
        nonlocal written
        while True:
            await asyncio.sleep(1.0)
            batch = pending[:]
            del pending[:]
            if batch:
                written += await ingest.write([(name, m.body) for m in batch])
                for message in batch:
                    await message.ack()

    await (await consuming.get_queue(f"{params['prefix']}.event")).consume(on_message)
    writing = asyncio.ensure_future(writer())
    say("ready")
    await wait_line("count")
    say(json.dumps({"events": written}))
    await wait_line("quit")
    writing.cancel()
    await connection.close()
    ingest.store.close()


async def declare_together(url: str, prefix: str, delete: bool = False) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            TOGETHER, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for kind in ("accepted", "task", "result", "event"):
            arguments: dict[str, Any] = {"x-max-priority": 3} if kind == "task" else {}
            queue = await channel.declare_queue(
                f"{prefix}.{kind}", durable=True, arguments=arguments
            )
            if delete:
                await queue.delete(if_unused=False, if_empty=False)
            else:
                await queue.bind(exchange, routing_key=kind)
    finally:
        await connection.close()


ROLES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "accept": role_accept,
    "publisher": role_publisher,
    "consumer": role_consumer,
    "sender": role_sender,
    "ingest": role_ingest,
    "codec": role_codec,
    "t-ingress": role_t_ingress,
    "t-scheduler": role_t_scheduler,
    "t-sender": role_t_sender,
    "t-reports": role_t_reports,
}


def run_role(name: str, params: dict[str, Any]) -> None:
    import uvloop

    function = ROLES[name]
    if asyncio.iscoroutinefunction(function):
        uvloop.run(function(params))  # Postline's services run on uvloop (POSTLINE_EVENT_LOOP)
    else:
        function(params)


# --- the parent: each part timed -------------------------------------------------------------


class Worker:
    """One ``--role`` process, spoken to by lines on stdin/stdout."""

    def __init__(self, role: str, params: dict[str, Any], log: Path) -> None:
        self.role = role
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [PYTHON, str(HERE), "--role", role, "--params", json.dumps(params)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def expect(self, what: str) -> str:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline().strip()
        if not line.startswith(what) and what != "":
            raise RuntimeError(f"worker {self.role}: {line!r}, expected {what!r}")
        return line

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@contextlib.contextmanager
def worker(role: str, params: dict[str, Any], log: Path) -> Iterator[Worker]:
    running = Worker(role, params, log)
    try:
        yield running
    finally:
        running.close()


def smtp_source(port: int, messages: int) -> float:
    """One smtp-source run as ``bench/e2e``'s load (20 sessions, 5 KB, connection per
    message); its CPU seconds."""
    command = ["smtp-source", "-s", str(SESSIONS), "-m", str(messages), "-l", str(SIZE)]
    command += ["-f", FROM, "-t", TO, "-M", "bench.localhost", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"smtp-source failed: {' '.join(command)}")
    return usage.ru_utime + usage.ru_stime


def per_1000(cpu: Mapping[str, float], units: int) -> dict[str, float]:
    return {name: round(1000 * seconds / units, 3) for name, seconds in cpu.items()}


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    amqp_url: str
    beam: int
    e2e: ModuleType


def part_accept(ctx: Context, kind: str) -> dict[str, float]:
    port = ctx.args.ports_base + (1 if kind == "bare" else 2)
    policy = ctx.workdir / "policy.yaml"
    policy.write_text(POSTLINE_RELAY_POLICY)
    params = {"kind": kind, "port": port, "policy": str(policy)}
    params["log"] = str(ctx.workdir / f"accept-{kind}.maillog")
    with worker("accept", params, ctx.workdir / f"accept-{kind}.log") as server:
        server.expect("ready")
        smtp_source(port, ctx.args.warmup)
        meter = Meter({"server": server.pid})
        meter.start()
        source = smtp_source(port, ctx.args.messages)
        cpu = meter.stop()
    return per_1000({**cpu, "smtp-source": source}, ctx.args.messages)


@dataclass(frozen=True)
class Hop:
    """One kind of broker message: ``batch`` items of ``size`` bytes each."""

    size: int
    batch: int
    in_flight: int
    priority: bool = False
    prefetch: int = 100


HOPS: dict[str, Hop] = {
    # ingress's deliveries by group commit: ~7.5 per broker message under bench/e2e's load.
    "hop deliveries batched": Hop(SIZE, 8, 4),
    "hop deliveries one by one": Hop(SIZE, 1, SESSIONS),
    # one task per delivery to the competing senders (a priority queue), 20 in flight.
    "hop tasks": Hop(SIZE, 1, SESSIONS, priority=True, prefetch=SESSIONS),
    # the same, grouped as deliveries are (not Postline's design: see BATCHED)
    "hop tasks batched": Hop(SIZE, 8, 4, priority=True),
    # results carry no content when delivered: ~300 bytes, ~6 per broker message in bench/e2e.
    "hop results batched": Hop(300, 8, 4),
    # events: ~350 bytes each, grouped by the producers.
    "hop events batched": Hop(350, 5, 2),
}


def part_hop(ctx: Context, name: str, round_: int) -> dict[str, float]:
    hop = HOPS[name]
    items = ctx.args.messages
    messages = max(1, items // hop.batch)
    warm = max(1, ctx.args.warmup // hop.batch)
    slug = name.replace(" ", "-")
    common = {
        "url": ctx.amqp_url,
        "key": f"floor.{slug}.{round_}",
        "priority": hop.priority,
        "messages": messages,
        "warm_messages": warm,
    }
    consumer_params = {**common, "queue": f"floor.{slug}.{round_}", "prefetch": hop.prefetch}
    publisher_params = {**common, "size": hop.size, "batch": hop.batch}
    publisher_params["in_flight"] = hop.in_flight
    logs = ctx.workdir / f"{slug}.log"
    with worker("consumer", consumer_params, logs) as consumer:
        consumer.expect("ready")
        with worker("publisher", publisher_params, logs) as publisher:
            publisher.expect("warm")
            consumer.expect("warm")
            meter = Meter({"publisher": publisher.pid, "consumer": consumer.pid})
            meter.pids["rabbitmq"] = ctx.beam
            meter.start()
            publisher.send("go")
            publisher.expect("done")
            consumer.expect("done")
            cpu = meter.stop()
    return per_1000(cpu, messages * hop.batch)


@contextlib.contextmanager
def smtp_sink(port: int) -> Iterator[int]:
    sink = subprocess.Popen(
        ["smtp-sink", "-u", "postfix", f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL
    )
    try:
        wait_for_smtp(port)
        yield sink.pid
    finally:
        sink.terminate()
        sink.wait(10)


def part_send(ctx: Context) -> dict[str, float]:
    port = ctx.args.ports_base + 3
    params = {"port": port, "per_connection": 100, "connections": SESSIONS}
    params.update(warm=ctx.args.warmup, messages=ctx.args.messages)
    with smtp_sink(port) as sink, worker("sender", params, ctx.workdir / "send.log") as sender:
        sender.expect("warm")
        meter = Meter({"client": sender.pid, "smtp-sink": sink})
        meter.start()
        sender.send("go")
        sender.expect("done")
        cpu = meter.stop()
    return per_1000(cpu, ctx.args.messages)


def part_ingest(ctx: Context, batch: int, round_: int) -> dict[str, float]:
    events = max(2 * ctx.args.messages, 4 * batch)
    path = ctx.workdir / f"ch-{batch}-{round_}"
    params = {"path": str(path), "events": events, "batch": batch}
    with worker("ingest", params, ctx.workdir / "ingest.log") as ingest:
        found = json.loads(ingest.expect("{"))
    shutil.rmtree(path, ignore_errors=True)
    return {"reports": round(1000 * found["cpu_seconds"] / found["events"], 3)}


def part_codec(ctx: Context) -> dict[str, float]:
    params = {"messages": max(8000, ctx.args.messages)}
    with worker("codec", params, ctx.workdir / "codec.log") as codec:
        found = json.loads(codec.expect("{"))
    return {"scheduler+sender": round(1000 * found["cpu_seconds"] / found["deliveries"], 3)}


def part_together(ctx: Context, round_: int, group_tasks: bool = False) -> dict[str, float]:
    """The bare pipeline, loaded as bench/e2e loads a side: CPU per message of each process
    and messages/s, until the sink (bench/e2e's) has every message."""
    e2e = ctx.e2e
    prefix = f"floor.together.{round_}.{int(group_tasks)}"
    asyncio.run(declare_together(ctx.amqp_url, prefix))
    port, sink_port = ctx.args.ports_base + 4, ctx.args.ports_base + 26
    params = {"url": ctx.amqp_url, "prefix": prefix, "port": port, "sink_port": sink_port}
    params["clickhouse"] = str(ctx.workdir / "together-ch")
    params["group_tasks"] = group_tasks
    log = ctx.workdir / "together.log"
    workdir = ctx.workdir / f"together-{int(group_tasks)}"
    workdir.mkdir()
    roles = ("t-reports", "t-sender", "t-scheduler", "t-ingress")
    try:
        with e2e.sink(workdir, sink_port) as the_sink, contextlib.ExitStack() as scope:
            workers = {r: scope.enter_context(worker(r, params, log)) for r in roles}
            for running in workers.values():
                running.expect("ready")
            warm = ctx.args.warmup
            smtp_source(port, warm)
            e2e.wait_for(lambda: the_sink.messages() >= warm, "the warm-up at the sink", 300)
            pids = {r.removeprefix("t-"): w.pid for r, w in workers.items()}
            meter = Meter({**pids, "rabbitmq": ctx.beam, "sink": the_sink.pid})
            meter.start()
            started = time.monotonic()
            source = smtp_source(port, ctx.args.messages)
            expected = warm + ctx.args.messages
            e2e.wait_for(lambda: the_sink.messages() >= expected, "every message", 600)
            seconds = time.monotonic() - started
            time.sleep(1.5)  # reports' last batch of events (it writes once a second)
            cpu = meter.stop()
            workers["t-reports"].send("count")
            events = json.loads(workers["t-reports"].expect("{"))["events"]
        final = the_sink.final  # read by the sink's stop, on leaving its block
    finally:
        asyncio.run(declare_together(ctx.amqp_url, prefix, delete=True))
        shutil.rmtree(ctx.workdir / "together-ch", ignore_errors=True)
    figures = per_1000({**cpu, "smtp-source": source}, ctx.args.messages)
    figures["all (pipeline)"] = round(
        sum(v for k, v in figures.items() if k in pids or k == "rabbitmq"), 3
    )
    figures["msgs_per_s"] = round(ctx.args.messages / seconds, 1)
    # Two events per message (queued, succeeded), the warm-up's included: all in ClickHouse.
    figures["events written per message"] = round(events / expected, 3)
    figures["duplicates at the sink"] = final.get("duplicates", 0)
    return figures


def part_postfix(ctx: Context, round_: int) -> dict[str, Any]:
    e2e = ctx.e2e
    args = argparse.Namespace(
        messages=ctx.args.messages,
        warmup=ctx.args.warmup,
        sessions=SESSIONS,
        size=SIZE,
        domains=1,
    )
    workdir = ctx.workdir / f"postfix-{round_}"
    workdir.mkdir()
    os.chmod(workdir, 0o755)
    result = e2e.run_postfix(args, workdir)
    kinds = {k.removeprefix("postfix/"): v for k, v in result.cpu.items() if "/" in k}
    return {
        "all processes": result.cpu["postfix (all processes)"],
        "msgs_per_s": round(result.rate, 1),
        "load: smtp-source": result.cpu["smtp-source"],
        "load: sink": result.cpu["sink"],
        **kinds,
    }


# --- main ---------------------------------------------------------------------------------


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in runs for k in r})
    return {k: round(statistics.median(r[k] for r in runs if k in r), 3) for k in keys}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--ingest-batches", default="100,1200,10000", help="events per ClickHouse insert"
    )
    parser.add_argument(
        "--ingest-batch", type=int, default=1200, help="the batch the sum counts (see README)"
    )
    parser.add_argument("--skip-postfix", action="store_true")
    parser.add_argument(
        "--together", action="store_true", help="also the parts as one bare pipeline"
    )
    parser.add_argument("--ports-base", type=int, default=21000, help="ports from here on")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        run_role(args.role, json.loads(args.params))
        return 0
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install postfix)", file=sys.stderr)
        return 2
    e2e = load_e2e()
    for name, offset in (("POSTFIX_PORT", 25), ("SINK_PORT", 26), ("RABBITMQ_PORT", 672)):
        setattr(e2e, name, args.ports_base + offset)
    batches = [int(b) for b in args.ingest_batches.split(",") if b]
    runs: dict[str, list[dict[str, float]]] = {}
    load_averages: list[float] = []

    def record(name: str, figures: dict[str, float]) -> None:
        runs.setdefault(name, []).append(figures)
        shown = ", ".join(f"{k} {v}" for k, v in figures.items())
        print(f"  {name}: {shown} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="postline-floor-") as tmp:
        os.chmod(tmp, 0o755)  # Postfix's daemons and RabbitMQ run as their own users
        with e2e.private_rabbitmq(Path(tmp)) as broker:
            time.sleep(5)
            idle = Meter({"rabbitmq": broker.pid})
            idle.start()
            time.sleep(5)
            beam_idle = round(idle.stop()["rabbitmq"] / 5 * 100, 1)
            for round_ in range(1, args.rounds + 1):
                print(f"round {round_}", file=sys.stderr, flush=True)
                workdir = Path(tmp) / f"round-{round_}"
                workdir.mkdir()
                os.chmod(workdir, 0o755)
                ctx = Context(args, workdir, broker.url_base, broker.pid, e2e)
                load_averages.append(os.getloadavg()[0])
                record("accept bare aiosmtpd", part_accept(ctx, "bare"))
                record("accept postline relay, no broker", part_accept(ctx, "postline"))
                for name in HOPS:
                    record(name, part_hop(ctx, name, round_))
                record("send", part_send(ctx))
                record("codec", part_codec(ctx))
                for batch in batches:
                    record(f"ingest {batch}", part_ingest(ctx, batch, round_))
                if args.together:
                    record("together", part_together(ctx, round_))
                    record("together, tasks grouped", part_together(ctx, round_, True))
                if not args.skip_postfix:
                    record("postfix", part_postfix(ctx, round_))
    medians = {name: median_of(r) for name, r in runs.items()}
    # The cheaper of the two SMTP servers stands for the accept (both keep every guarantee
    # that does not involve the broker).
    accepts = ("accept bare aiosmtpd", "accept postline relay, no broker")
    figures = {**medians, "accept": min((medians[a] for a in accepts), key=lambda f: f["server"])}
    ingest = f"ingest {args.ingest_batch}"
    if ingest in medians:
        figures["ingest"] = medians[ingest]
    results: dict[str, Any] = {
        "messages": args.messages,
        "payload_bytes": SIZE,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_per_round": [round(x, 2) for x in load_averages],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rabbitmq_idle_cpu_percent": beam_idle,
        "cpu_s_per_1000": medians,
        "runs": runs,
        "floor": floor_sum(figures),
        "floor_tasks_grouped": floor_sum(figures, GROUPED),
        "budget_ms_at_606_per_s": budget_ms(606),
    }
    if "postfix" in medians:
        postfix = medians["postfix"]
        results["postfix_ms"] = postfix["all processes"]
        # The two cores also run the load and the sink in bench/e2e: what is left for the
        # side under test at Postfix's rate.
        beside = postfix["load: smtp-source"] + postfix["load: sink"]
        results["budget_ms_at_postfix_rate_now"] = budget_ms(postfix["msgs_per_s"])
        results["budget_ms_at_postfix_rate_now_minus_load_and_sink"] = round(
            budget_ms(postfix["msgs_per_s"]) - beside, 3
        )
        results["budget_ms_at_606_per_s_minus_load_and_sink"] = round(budget_ms(606) - beside, 3)
        if "together" in medians:
            results["together_to_postfix"] = round(
                medians["together"]["msgs_per_s"] / postfix["msgs_per_s"], 2
            )
            results["together_tasks_grouped_to_postfix"] = round(
                medians["together, tasks grouped"]["msgs_per_s"] / postfix["msgs_per_s"], 2
            )
    e2e.emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
