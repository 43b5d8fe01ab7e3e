"""``python -m postline.scheduler``: the composition root of the scheduler service."""

from __future__ import annotations

import logging
import time

from postline.common.policy import LivePolicy
from postline.common.runtime import run, serve_health, stop_event
from postline.common.telemetry import setup_telemetry, shutdown_telemetry
from postline.scheduler.service import SchedulerService
from postline.scheduler.settings import SchedulerSettings

logger = logging.getLogger(__name__)


async def main() -> None:
    settings = SchedulerSettings()  # type: ignore[call-arg]
    setup_telemetry("scheduler", settings)
    policy = LivePolicy(settings.policy, interval=settings.policy_reload_interval)
    service = SchedulerService(settings, policy, time.time)
    stop = stop_event()
    service.readiness.note(lambda: policy.status)
    health = await serve_health(settings.health_listen, service.readiness)
    if await service.start(until=stop):
        policy.start()
        await stop.wait()
        logger.info("scheduler %s stopping", service.replica)
    await health.stop()
    await policy.stop()
    await service.stop()
    shutdown_telemetry()


if __name__ == "__main__":
    run(main)
