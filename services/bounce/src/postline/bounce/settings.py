"""Bounce settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from postline.common.settings import ServiceSettings


class BounceSettings(ServiceSettings):
    smtp_listen: str = "127.0.0.1:2526"
    grpc_listen: str = "127.0.0.1:50053"
    clickhouse_dsn: str = "chdb://./var/clickhouse/bounce"
    health_listen: str = "127.0.0.1:9104"
