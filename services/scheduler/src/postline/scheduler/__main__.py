"""``python -m postline.scheduler``: the composition root of the scheduler service.

It consumes every shard's queues; they are single-active-consumer, so with several replicas
one is active per shard and the others are hot standbys that take over when it dies.
"""

from __future__ import annotations

import asyncio
import logging
import time

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import inbound_queue, results_queue
from postline.common.policy import load_policy
from postline.common.runtime import serve_health, stop_event
from postline.common.telemetry import setup_telemetry
from postline.scheduler.handlers import Scheduler
from postline.scheduler.settings import SchedulerSettings
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = SchedulerSettings()  # type: ignore[call-arg]
    setup_telemetry("scheduler", settings.otel_exporter, settings.log_level)
    policy = load_policy(settings.policy)
    broker = Broker(settings.amqp_url, Topology(settings.shards))
    await broker.connect()
    stop = stop_event()
    scheduler = Scheduler(broker, policy, time.time)
    for shard in range(settings.shards):
        await broker.consume(
            inbound_queue(shard), delivery_pb2.AcceptedDelivery, scheduler.on_accepted
        )
        await broker.consume(results_queue(shard), delivery_pb2.DeliveryResult, scheduler.on_result)
    health = await serve_health(settings.health_listen, lambda: broker.connected)
    logger.info("scheduler consuming %d shards", settings.shards)
    await stop.wait()
    logger.info("scheduler stopping")
    health.close()
    await broker.close()


if __name__ == "__main__":
    asyncio.run(main())
