"""``python -m postline.bounce``: the composition root of the bounce service."""

from __future__ import annotations

import asyncio
import logging

from postline.bounce.bounces import BounceMails
from postline.bounce.deliveries import MESSAGE_TYPES, Deliveries
from postline.bounce.deliveries import PREFETCH as DELIVERIES_PREFETCH
from postline.bounce.grpc_server import GrpcServer, SuppressionsServicer
from postline.bounce.handlers import Bounce
from postline.bounce.inbound import InboundMail
from postline.bounce.receiver import BounceHandler, start_receiver
from postline.bounce.settings import BounceSettings
from postline.bounce.store import Store
from postline.bounce.suppressions import SuppressionList
from postline.common.broker import Broker, Topology
from postline.common.broker.topology import BOUNCE_DELIVERIES, BOUNCE_RESULTS
from postline.common.clickhouse import pending_migrations
from postline.common.health import Readiness
from postline.common.policy import LivePolicy
from postline.common.runtime import run, serve_health, split_listen, stop_event
from postline.common.telemetry import setup_telemetry, shutdown_telemetry
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = BounceSettings()  # type: ignore[call-arg]
    setup_telemetry("bounce", settings)
    policy = LivePolicy(settings.policy, interval=settings.policy_reload_interval)
    store = Store(settings.clickhouse_dsn)
    pending = await store.run(pending_migrations)
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise SystemExit(f"ClickHouse schema is behind ({names}): run `postline migrate` first")
    broker = Broker(settings.amqp_url, Topology(settings.shards, settings.queue_type))
    stop = stop_event()
    readiness = Readiness()
    readiness.add("rabbitmq", lambda: broker.problem)
    readiness.add("clickhouse", store.health.problem)
    readiness.note(lambda: policy.status)
    health = await serve_health(settings.health_listen, readiness)
    if not await broker.connect(until=stop):
        await health.stop()
        store.close()
        return
    # Idle, nothing would notice ClickHouse going away: it is pinged now and then.
    pinging = asyncio.create_task(store.health.watch(store.ping))

    suppressions = SuppressionList(store, broker)
    deliveries = Deliveries(store)
    bounce = Bounce(broker, suppressions, policy)
    await broker.consume(BOUNCE_RESULTS, delivery_pb2.DeliveryResult, bounce.on_failed_result)
    await broker.consume(
        BOUNCE_DELIVERIES, MESSAGE_TYPES, deliveries.on_event, prefetch=DELIVERIES_PREFETCH
    )

    grpc_server = GrpcServer(SuppressionsServicer(suppressions, policy), settings.grpc_listen)
    await grpc_server.start()
    inbound = InboundMail(broker)
    await inbound.declare(policy())
    policy.on_change(inbound.on_policy_change)
    handler = BounceHandler(BounceMails(deliveries, store), suppressions, broker, policy, inbound)
    host, port = split_listen(settings.smtp_listen)
    smtp = await start_receiver(
        handler, host, port, hostname=settings.hostname, max_size=settings.max_bounce_size
    )
    policy.start()
    logger.info(
        "bounce classifying %s, receiving bounces on %s, suppressions on %s",
        BOUNCE_RESULTS,
        settings.smtp_listen,
        settings.grpc_listen,
    )
    await stop.wait()
    logger.info("bounce stopping")
    smtp.close()
    pinging.cancel()
    await health.stop()
    await policy.stop()
    await grpc_server.stop()
    await broker.close()
    store.close()
    shutdown_telemetry()


if __name__ == "__main__":
    run(main)
