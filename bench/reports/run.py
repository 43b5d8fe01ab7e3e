"""Reports benchmark: ingest 10 million realistic events, then time every search, statistic
and export the API offers. See bench/README.md ("Reports") for how to read the figures.

    .venv/bin/python bench/reports/run.py --path /tmp/postline-bench/ch --events 10000000
    .venv/bin/python bench/reports/run.py --path /tmp/postline-bench/ch --skip-load   # again
    .venv/bin/python bench/reports/run.py --rabbitmq 1000000    # the full path through RabbitMQ

Ingest goes through the service's own code: broker messages as the consumer receives them
(protobuf bytes: ``--per-message`` events each, as a busy producer's publisher batches them;
1 for one event per message), taken in batches as the batch consumer takes them (up to 16 MiB
or 20,000 messages) and written by ``Ingest.write`` (one ProtobufList insert per kind,
deduplication token, every materialized view). Only that part is timed; making the events is
not. Queries go through ``ReportQueries``, the code behind the HTTP and gRPC APIs, with their
parameters varied between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import Generator

from postline.common.clickhouse import apply_migrations, connect
from postline.common.credentials import Principal
from postline.common.policy import parse_policy
from postline.reports.access import Caller
from postline.reports.ingest import Ingest, Raw, envelope_rows, insert_token, prepare
from postline.reports.queries import ReportQueries
from postline.reports.store import Store

# The batch consumer's defaults (POSTLINE_BATCH_SIZE, POSTLINE_BATCH_BYTES).
BATCH_MESSAGES = 20_000
BATCH_BYTES = 16 * 1024 * 1024
POLICY = """
version: 1
servers:
  default: {return_path_domain: bounce.example.test}
  campaigns: {return_path_domain: bounce.example.test}
"""
DEV = Caller.api(Principal("default", "dev"))


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    cores = len(
        [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("processor")]
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    load = Path("/proc/loadavg").read_text().split()[:3]
    return f"{cpu}, {cores} cores, {mem} GiB RAM, load average {' '.join(load)}"


def messages(events: Iterable[Any], per_message: int) -> list[Raw]:
    """Broker messages of ``per_message`` events each (one kind per message), in order.

    Streams: only the serialized messages are kept (10 million event objects would not fit
    in memory)."""
    from postline.v1 import events_pb2

    raws: list[Raw] = []
    pending: dict[str, list[Any]] = {}

    def flush(name: str) -> None:
        group = pending.pop(name, [])
        if len(group) == 1:
            raws.append((name, group[0].SerializeToString()))
        elif group:
            batch = (
                events_pb2.DeliveryEvents
                if name.endswith("DeliveryEvent")
                else events_pb2.ErrorEvents
            )
            raws.append((batch.DESCRIPTOR.full_name, batch(events=group).SerializeToString()))

    for event in events:
        name = event.DESCRIPTOR.full_name
        pending.setdefault(name, []).append(event)
        if len(pending[name]) >= per_message:
            flush(name)
    for name in list(pending):
        flush(name)
    return raws


def consumer_batches(raws: Sequence[Raw]) -> list[list[Raw]]:
    """The batches the batch consumer takes when messages arrive faster than a batch waits."""
    batches: list[list[Raw]] = [[]]
    size = 0
    for raw in raws:
        if batches[-1] and (len(batches[-1]) >= BATCH_MESSAGES or size + len(raw[1]) > BATCH_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(raw)
        size += len(raw[1])
    return batches


async def load(store: Store, total: int, per_message: int) -> dict[str, Any]:
    """Ingest ``total`` events through the service's ingest path.

    The events are made and serialized first (not timed), in time order. The ingest then takes
    them in full batches, as the consumer does when events arrive faster than a batch's wait
    (a busy system, or a backlog after an outage), and is timed as one: wall clock, and CPU
    time of the process (this thread, the writer thread and ClickHouse's own threads:
    inserts, views, background merges)."""
    made = time.perf_counter()
    raws = messages(
        (e for hour in Generator(end=time.time()).events(total) for e in hour), per_message
    )
    batches = consumer_batches(raws)
    print(
        f"  made {len(raws):,} messages in {len(batches):,} batches "
        f"in {time.perf_counter() - made:.0f}s",
        flush=True,
    )
    ingest = Ingest(store)
    events = reported = 0
    started, started_cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        events += await ingest.write(batch)
        if events - reported >= 1_000_000:
            reported = events
            rate = events / (time.perf_counter() - started)
            print(f"  {events:>10,} events, {rate:,.0f}/s", flush=True)
    wall = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    return {
        "events": events,
        "events_per_message": per_message,
        "messages": len(raws),
        "batches": len(batches),
        "ingest_seconds": round(wall, 1),
        "events_per_second": round(events / wall),
        "cpu_seconds": round(cpu, 1),
        "events_per_cpu_second": round(events / cpu),
    }


async def timed(
    runs: int, make: Callable[[random.Random], Awaitable[Any]], seed: int = 1
) -> dict[str, float]:
    rng = random.Random(seed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await make(rng)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = statistics.quantiles(times, n=20, method="inclusive")[18] if runs >= 2 else times[0]
    return {
        "p50": round(statistics.median(times), 1),
        "p95": round(p95, 1),
        "max": round(times[-1], 1),
    }


async def sample(store: Store, sql: str) -> list[str]:
    rows = await store.run(lambda c: c.query(sql).result_rows)
    return [str(r[0]) for r in rows]


async def measure(store: Store, runs: int) -> dict[str, Any]:
    queries = ReportQueries(store, parse_policy(POLICY))
    today = datetime.now(UTC).date()
    first = today - timedelta(days=29)
    month = {"start": first.isoformat(), "end": today.isoformat()}

    def one_day(rng: random.Random) -> dict[str, str]:
        day = (first + timedelta(days=rng.randrange(29))).isoformat()
        return {"start": day, "end": day}

    recipients = await sample(
        store,
        "SELECT recipient FROM postline.delivery_log WHERE server = 'default' "
        "ORDER BY cityHash64(delivery_id) LIMIT 500",
    )
    error_recipients = await sample(
        store,
        "SELECT recipient FROM postline.error_log WHERE server = 'default' "
        "ORDER BY cityHash64(event_id) LIMIT 500",
    )
    delivery_ids = await sample(
        store,
        "SELECT delivery_id FROM postline.delivery_log WHERE server = 'default' "
        "ORDER BY cityHash64(delivery_id) LIMIT 500",
    )

    def search(
        kind: str, extra: Callable[[random.Random], dict[str, str]]
    ) -> Callable[[random.Random], Awaitable[Any]]:
        return lambda rng: queries.search(kind, DEV, {**month, **extra(rng)})

    def local_part(pool: list[str]) -> Callable[[random.Random], dict[str, str]]:
        # e.g. "taro12345": the start of one real address, found in a few rows
        return lambda rng: {"address": rng.choice(pool).split("@")[0].upper()}

    def full(pool: list[str]) -> Callable[[random.Random], dict[str, str]]:
        return lambda rng: {"address": rng.choice(pool)}

    def missing(rng: random.Random) -> dict[str, str]:
        return {"address": f"nobody{rng.randrange(10**9)}@nowhere.test"}

    cases: dict[str, Callable[[random.Random], Awaitable[Any]]] = {
        "errors: 30 days": search("errors", lambda rng: {}),
        "errors: 30 days, error=2": search("errors", lambda rng: {"error": "2"}),
        "errors: 30 days, error=5": search("errors", lambda rng: {"error": "5"}),
        "errors: one day": lambda rng: queries.search("errors", DEV, one_day(rng)),
        "errors: 30 days, full address": search("errors", full(error_recipients)),
        "errors: 30 days, part of an address": search("errors", local_part(error_recipients)),
        "errors: 30 days, address matching nothing": search("errors", missing),
        "errors: 30 days, address @gmail.com": search(
            "errors", lambda rng: {"address": "@GMAIL.com"}
        ),
        "deliveries: 30 days": search("deliveries", lambda rng: {}),
        "deliveries: 30 days, status=failed": search(
            "deliveries", lambda rng: {"status": "failed"}
        ),
        "deliveries: 30 days, status=deferred": search(
            "deliveries", lambda rng: {"status": "deferred"}
        ),
        "deliveries: 30 days, status=queued": search(
            "deliveries", lambda rng: {"status": "queued"}
        ),
        "deliveries: one day, api_user=app": lambda rng: queries.search(
            "deliveries", DEV, {**one_day(rng), "api_user": "app"}
        ),
        "deliveries: 30 days, full address": search("deliveries", full(recipients)),
        "deliveries: 30 days, part of an address": search("deliveries", local_part(recipients)),
        "deliveries: 30 days, address matching nothing": search("deliveries", missing),
        "deliveries: 30 days, address, status=failed": search(
            "deliveries", lambda rng: {**local_part(recipients)(rng), "status": "failed"}
        ),
        "delivery history": lambda rng: queries.history(DEV, rng.choice(delivery_ids), {}),
        "live (today's newest 100)": lambda rng: queries.live(DEV, {}),
    }
    for name in (
        "deliveries", "domains", "errors", "daily", "monthly", "days-of-month", "days-of-week",
        "hours", "mx-hosts", "senders", "reply-codes",
    ):  # fmt: skip
        cases[f"stats/{name}: 30 days"] = (
            lambda rng, name=name: queries.stats(name, DEV, month)  # type: ignore[misc]
        )
    cases["stats/deliveries: one day by hour, tz=Asia/Tokyo"] = lambda rng: queries.stats(
        "deliveries", DEV, {**one_day(rng), "interval": "hour", "tz": "Asia/Tokyo"}
    )
    cases["stats/errors: 30 days, domain=gmail.com, by day"] = lambda rng: queries.stats(
        "errors", DEV, {**month, "domain": "gmail.com", "interval": "day"}
    )
    cases["stats/domains: 30 days, tz=Asia/Tokyo"] = lambda rng: queries.stats(
        "domains", DEV, {**month, "tz": "Asia/Tokyo"}
    )
    results: dict[str, Any] = {}
    for name, make in cases.items():
        await make(random.Random(0))  # warm: first-use costs are not what a user waits for
        results[name] = await timed(runs, make)
        print(f"  {name:55s} {results[name]}", flush=True)

    async def export() -> int:
        # the first 100,000 rows of one busy day's deliveries.csv, as the client reads them
        day = (today - timedelta(days=3)).isoformat()
        q = queries.export_query("deliveries", DEV, {"start": day, "end": day})
        rows = 0
        async for chunk in await queries.export("deliveries", q):
            rows += chunk.count(b"\n")
            if rows > 100_000:
                break
        return rows

    await export()
    results["deliveries.csv: 100,000 rows"] = await timed(max(3, runs // 5), lambda rng: export())
    print(f"  deliveries.csv 100,000 rows {results['deliveries.csv: 100,000 rows']}")
    return results


async def table_sizes(store: Store) -> dict[str, Any]:
    rows = await store.run(
        lambda c: c.query(
            "SELECT table, sum(rows), count(), formatReadableSize(sum(bytes_on_disk)) "
            "FROM system.parts WHERE database = 'postline' AND active GROUP BY table "
            "ORDER BY table"
        ).result_rows
    )
    return {str(t): {"rows": int(n), "parts": int(p), "size": str(s)} for t, n, p, s in rows}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    dsn = f"chdb://{args.path}"
    results: dict[str, Any] = {"machine": machine(), "python": sys.version.split()[0]}
    if not args.skip_load:
        client = connect(dsn)
        apply_migrations(client)
        client.close()
    store = Store(dsn)
    try:
        if not args.skip_load:
            print(f"ingest of {args.events:,} events", flush=True)
            results["ingest"] = await load(store, args.events, args.per_message)
            print(f"  {results['ingest']}", flush=True)
        results["tables"] = await table_sizes(store)
        print(json.dumps(results["tables"], indent=1), flush=True)
        print(f"queries, {args.runs} runs each (ms)", flush=True)
        results["queries"] = await measure(store, args.runs)
    finally:
        store.close()
    return results


async def through_rabbitmq(
    count: int, path: Path, per_message: int, batch_bytes: int, write: bool = True
) -> dict[str, Any]:
    """The service's whole consumer: publish first, then consume in batches and write.

    With ``write`` False, batches are prepared for ClickHouse (grouped, envelopes built) but
    not inserted: what one reports process can hand a ClickHouse server."""
    from postline.common.broker import Broker, Topology
    from postline.common.broker.topology import DELIVERY_EVENT_KEY, ERROR_EVENT_KEY, REPORTS_EVENTS
    from postline.reports.batching import BatchConsumer

    vhost = f"postline-bench-{uuid.uuid4().hex[:8]}"
    ctl = ["rabbitmqctl", "-q"]
    await asyncio.to_thread(subprocess.run, [*ctl, "add_vhost", vhost], check=True)
    await asyncio.to_thread(
        subprocess.run,
        [*ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
    )
    client = connect(f"chdb://{path}")
    apply_migrations(client)
    client.close()
    store = Store(f"chdb://{path}")
    broker = Broker(f"amqp://guest:guest@127.0.0.1:5672/{vhost}", Topology(1))
    try:
        await broker.connect()
        raws = messages(
            (e for hour in Generator(end=time.time(), days=1).events(count) for e in hour),
            per_message,
        )
        total = sum(envelope_rows(body) if "Events" in name else 1 for name, body in raws)
        channel = await broker.connection.channel(publisher_confirms=False)
        exchange = await channel.get_exchange("postline", ensure=False)
        started = time.perf_counter()
        for name, body in raws:
            key = DELIVERY_EVENT_KEY if "Delivery" in name else ERROR_EVENT_KEY
            await exchange.publish(
                aio_pika.Message(
                    body,
                    headers={"x-postline-type": name},
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=key,
            )
        await channel.close()
        publish_seconds = time.perf_counter() - started
        print(
            f"  published {total:,} events in {len(raws):,} messages in {publish_seconds:.1f}s",
            flush=True,
        )
        ingest = Ingest(store)

        async def prepare_only(raws: Sequence[Raw]) -> int:
            prepared = prepare(raws)
            for kind, data, _ in prepared.inserts:
                insert_token(kind.table, data)
            return prepared.events

        consumer = BatchConsumer(
            broker, REPORTS_EVENTS, ingest.write if write else prepare_only, max_bytes=batch_bytes
        )
        started, started_cpu = time.perf_counter(), time.process_time()
        await consumer.start()
        while consumer.written < total:  # noqa: ASYNC110 (polling a counter)
            await asyncio.sleep(0.05)
        consume_seconds = time.perf_counter() - started
        cpu = time.process_time() - started_cpu
        await consumer.stop()
        return {
            "events": total,
            "events_per_message": per_message,
            "messages": len(raws),
            "written": write,
            "publish_per_second": round(total / publish_seconds),
            "consume_and_write_per_second": round(total / consume_seconds),
            "events_per_cpu_second": round(total / cpu),
        }
    finally:
        await broker.close()
        store.close()
        await asyncio.to_thread(subprocess.run, [*ctl, "delete_vhost", vhost], check=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", type=Path, default=Path("/tmp/postline-bench/ch"))
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--skip-load", action="store_true", help="measure an existing data set")
    parser.add_argument("--rabbitmq", type=int, default=0, help="only: N events via RabbitMQ")
    parser.add_argument("--batch-mib", type=int, default=16, help="POSTLINE_BATCH_BYTES, in MiB")
    parser.add_argument(
        "--no-write", action="store_true", help="with --rabbitmq: prepare inserts, do not write"
    )
    parser.add_argument(
        "--per-message", type=int, default=100, help="events per broker message (1: single)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.rabbitmq:
        results = asyncio.run(
            through_rabbitmq(
                args.rabbitmq,
                args.path,
                args.per_message,
                args.batch_mib << 20,
                write=not args.no_write,
            )
        )
        results["machine"] = machine()
    else:
        results = asyncio.run(run(args))
    print(json.dumps(results, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
