"""``python -m postline.bounce``: the composition root of the bounce service."""

from __future__ import annotations

import asyncio
import logging

from postline.bounce.handlers import Bounce
from postline.bounce.settings import BounceSettings
from postline.common.broker import Broker, Topology
from postline.common.broker.topology import BOUNCE_RESULTS
from postline.common.runtime import serve_health, stop_event
from postline.common.telemetry import setup_telemetry
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = BounceSettings()  # type: ignore[call-arg]
    setup_telemetry("bounce", settings.otel_exporter, settings.log_level)
    broker = Broker(settings.amqp_url, Topology(settings.shards))
    await broker.connect()
    stop = stop_event()
    bounce = Bounce(broker)
    await broker.consume(BOUNCE_RESULTS, delivery_pb2.DeliveryResult, bounce.on_failed_result)
    health = await serve_health(settings.health_listen, lambda: broker.connected)
    logger.info("bounce classifying %s", BOUNCE_RESULTS)
    await stop.wait()
    logger.info("bounce stopping")
    health.close()
    await broker.close()


if __name__ == "__main__":
    asyncio.run(main())
