"""``python -m postline.scheduler``: the composition root of the scheduler service."""

from __future__ import annotations

import logging
import time

from postline.common.policy import load_policy
from postline.common.runtime import run, serve_health, stop_event
from postline.common.telemetry import setup_telemetry
from postline.scheduler.service import SchedulerService
from postline.scheduler.settings import SchedulerSettings

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = SchedulerSettings()  # type: ignore[call-arg]
    setup_telemetry("scheduler", settings.otel_exporter, settings.log_level)
    service = SchedulerService(settings, load_policy(settings.policy), time.time)
    stop = stop_event()
    health = await serve_health(settings.health_listen, service.readiness)
    if await service.start(until=stop):
        await stop.wait()
        logger.info("scheduler %s stopping", service.replica)
    await health.stop()
    await service.stop()


if __name__ == "__main__":
    run(main)
