"""``python -m postline.reports``: the composition root of the reports service."""

from __future__ import annotations

import asyncio
import logging

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import REPORTS_EVENTS
from postline.common.clickhouse import pending_migrations
from postline.common.policy import load_policy
from postline.common.runtime import HttpServer, stop_event
from postline.common.telemetry import setup_telemetry
from postline.reports.http import create_app
from postline.reports.ingest import TYPES, Ingest
from postline.reports.settings import ReportsSettings
from postline.reports.store import Store

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = ReportsSettings()  # type: ignore[call-arg]
    setup_telemetry("reports", settings.otel_exporter, settings.log_level)
    policy = load_policy(settings.policy)
    store = Store(settings.clickhouse_dsn)
    pending = await store.run(pending_migrations)
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise SystemExit(f"ClickHouse schema is behind ({names}): run `postline migrate` first")
    broker = Broker(settings.amqp_url, Topology(settings.shards))
    await broker.connect()
    stop = stop_event()
    await broker.consume(REPORTS_EVENTS, TYPES, Ingest(store).on_event, prefetch=100)

    app = create_app(store, policy, ready=lambda: broker.connected)
    http = HttpServer(app, settings.http_listen)
    await http.start()
    logger.info("reports HTTP on %s", settings.http_listen)
    await stop.wait()
    logger.info("reports stopping")
    await http.stop()
    await broker.close()
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
