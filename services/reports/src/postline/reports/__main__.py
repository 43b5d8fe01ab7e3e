"""``python -m postline.reports``: the composition root of the reports service."""

from __future__ import annotations

import asyncio
import logging

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import REPORTS_EVENTS
from postline.common.clickhouse import pending_migrations
from postline.common.health import Readiness
from postline.common.policy import load_policy
from postline.common.runtime import HttpServer, stop_event
from postline.common.telemetry import setup_telemetry
from postline.reports.batching import BatchConsumer
from postline.reports.grpc_api import GrpcServer
from postline.reports.http import create_app
from postline.reports.ingest import Ingest
from postline.reports.queries import ReportQueries
from postline.reports.settings import ReportsSettings
from postline.reports.store import Store

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = ReportsSettings()  # type: ignore[call-arg]
    setup_telemetry("reports", settings.otel_exporter, settings.log_level)
    policy = load_policy(settings.policy)
    store = Store(settings.clickhouse_dsn, readers=settings.query_threads)
    pending = await store.run(pending_migrations)
    if pending:
        names = ", ".join(m.label for m in pending)
        raise SystemExit(f"ClickHouse schema is behind ({names}): run `postline migrate` first")
    broker = Broker(settings.amqp_url, Topology(settings.shards))
    stop = stop_event()
    consumer = BatchConsumer(
        broker,
        REPORTS_EVENTS,
        Ingest(store).write,
        max_events=settings.batch_size,
        max_bytes=settings.batch_bytes,
        max_wait=settings.batch_wait,
        hold=settings.batch_hold,
    )
    readiness = Readiness()
    readiness.add("rabbitmq", lambda: broker.problem)
    readiness.add("ingest", consumer.problem)
    readiness.add("clickhouse", store.health.problem)
    # Idle, nothing would notice ClickHouse going away: it is pinged now and then.
    pinging = asyncio.create_task(store.health.watch(store.ping))

    # The API answers from ClickHouse, with or without RabbitMQ (readiness says which).
    queries = ReportQueries(store, policy)
    http = HttpServer(create_app(queries, ready=readiness), settings.http_listen)
    await http.start()
    grpc_server = GrpcServer(queries, settings.grpc_listen)
    await grpc_server.start()
    logger.info("reports HTTP on %s, gRPC on %s", settings.http_listen, settings.grpc_listen)
    if await broker.connect(until=stop):
        await consumer.start()
        await stop.wait()
    logger.info("reports stopping")
    pinging.cancel()
    await consumer.stop()  # writes what is buffered, or hands it back to the queue
    await grpc_server.stop()
    await http.stop()
    await broker.close()
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
