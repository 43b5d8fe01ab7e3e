"""Scheduler settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from postline.common.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    grpc_listen: str = "127.0.0.1:50052"
    health_listen: str = "127.0.0.1:9102"
