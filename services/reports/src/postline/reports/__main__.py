"""``python -m postline.reports``: the composition root of the reports service."""

from __future__ import annotations

import asyncio
import logging

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import REPORTS_EVENTS
from postline.common.clickhouse import pending_migrations
from postline.common.health import Readiness
from postline.common.policy import LivePolicy
from postline.common.runtime import HttpServer, run, stop_event
from postline.common.telemetry import setup_telemetry, shutdown_telemetry
from postline.common.throttle import AuthThrottle
from postline.reports.access import Gate
from postline.reports.batching import BatchConsumer
from postline.reports.console.assets import check_vendor
from postline.reports.grpc_api import GrpcServer
from postline.reports.http import create_app
from postline.reports.ingest import Ingest
from postline.reports.journal import Journal
from postline.reports.queries import ReportQueries
from postline.reports.settings import ReportsSettings
from postline.reports.spans import SpanWriter, create_otlp_app
from postline.reports.store import Store
from postline.reports.summary.runner import WeeklySummaries
from postline.reports.suppressions import SuppressionsClient
from postline.reports.webhooks.dispatcher import Webhooks

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = ReportsSettings()  # type: ignore[call-arg]
    setup_telemetry("reports", settings)
    policy = LivePolicy(settings.policy, interval=settings.policy_reload_interval)
    store = Store(settings.clickhouse_dsn, readers=settings.query_threads)
    pending = await store.run(pending_migrations)
    if pending:
        names = ", ".join(m.label for m in pending)
        raise SystemExit(f"ClickHouse schema is behind ({names}): run `postline migrate` first")
    broker = Broker(settings.amqp_url, Topology(settings.shards, settings.queue_type))
    stop = stop_event()
    policy.start()
    consumer = BatchConsumer(
        broker,
        REPORTS_EVENTS,
        Ingest(store, Journal(settings.journal_path())).write,
        max_events=settings.batch_size,
        max_bytes=settings.batch_bytes,
        max_wait=settings.batch_wait,
        retry_for=settings.batch_retry,
    )
    webhooks = Webhooks(broker, store, policy(), settings.webhook_settings())
    policy.on_change(webhooks.on_policy_change)
    summaries = WeeklySummaries(broker, store, policy)
    readiness = Readiness()
    readiness.add("rabbitmq", lambda: broker.problem)
    readiness.add("ingest", consumer.problem)
    readiness.add("clickhouse", store.health.problem)
    readiness.note(lambda: policy.status)
    # Idle, nothing would notice ClickHouse going away: it is pinged now and then.
    pinging = asyncio.create_task(store.health.watch(store.ping))

    # The API answers from ClickHouse, with or without RabbitMQ (readiness says which).
    queries = ReportQueries(store, policy)
    throttle = AuthThrottle()  # failed authentications, shared by HTTP, gRPC and the console
    suppressions = SuppressionsClient(settings.bounce_grpc, policy)
    check_vendor(settings.console_assets)
    app = create_app(
        queries,
        ready=readiness,
        suppressions=suppressions,
        throttle=throttle,
        session_ttl=settings.console_session_ttl,
        assets=settings.console_assets,
    )
    http = HttpServer(app, settings.http_listen)
    await http.start()
    grpc_server = GrpcServer(queries, settings.grpc_listen, Gate(policy, throttle))
    await grpc_server.start()
    receiver = None
    if settings.otlp_listen:
        receiver = HttpServer(create_otlp_app(SpanWriter(store)), settings.otlp_listen)
        await receiver.start()
        logger.info("reports receiving spans (OTLP/HTTP) on %s", settings.otlp_listen)
    logger.info("reports HTTP on %s, gRPC on %s", settings.http_listen, settings.grpc_listen)
    if await broker.connect(until=stop):
        await consumer.start()
        await webhooks.start()
        await summaries.start()
        await stop.wait()
    logger.info("reports stopping")
    await policy.stop()
    pinging.cancel()
    await consumer.stop()  # writes what is buffered, or hands it back to the queue
    await webhooks.stop()
    await summaries.stop()
    # Our own spans go to our own receiver (when make run points them here): flush them while
    # it still listens, from a thread, since this loop serves the request.
    await asyncio.to_thread(shutdown_telemetry)
    await grpc_server.stop()
    await http.stop()
    if receiver is not None:
        await receiver.stop()
    await suppressions.close()
    await broker.close()
    store.close()


if __name__ == "__main__":
    run(main)
