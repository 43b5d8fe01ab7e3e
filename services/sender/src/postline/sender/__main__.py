"""``python -m postline.sender``: a sender's composition root (stateless; scale by replicas)."""

from __future__ import annotations

import asyncio
import logging

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import SENDER_TASKS
from postline.common.runtime import serve_health, stop_event
from postline.common.telemetry import setup_telemetry
from postline.sender.handlers import Sender
from postline.sender.settings import SenderSettings
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = SenderSettings()  # type: ignore[call-arg]
    setup_telemetry("sender", settings.otel_exporter, settings.log_level)
    broker = Broker(settings.amqp_url, Topology(settings.shards))
    await broker.connect()
    stop = stop_event()
    sender = Sender(broker, settings.hostname, settings.smtp_timeout)
    await broker.consume(
        SENDER_TASKS, delivery_pb2.DeliveryTask, sender.on_task, prefetch=settings.concurrency
    )
    health = await serve_health(settings.health_listen, lambda: broker.connected)
    logger.info("sender consuming %s with concurrency %d", SENDER_TASKS, settings.concurrency)
    await stop.wait()
    logger.info("sender stopping")
    health.close()
    await broker.close()


if __name__ == "__main__":
    asyncio.run(main())
