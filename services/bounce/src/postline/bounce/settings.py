"""Bounce settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from pydantic import Field

from postline.common.settings import ServiceSettings


class BounceSettings(ServiceSettings):
    smtp_listen: str = "127.0.0.1:2526"
    grpc_listen: str = "127.0.0.1:50053"
    clickhouse_dsn: str = "chdb://./var/clickhouse/bounce"
    health_listen: str = "127.0.0.1:9104"
    hostname: str = Field(default="postline.localhost", description="SMTP greeting name")
    max_bounce_size: int = Field(
        default=25 * 1024 * 1024, ge=1024, description="largest bounce mail accepted (bytes)"
    )
