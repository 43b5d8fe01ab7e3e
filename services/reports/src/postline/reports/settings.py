"""Reports settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from postline.common.settings import ServiceSettings


class ReportsSettings(ServiceSettings):
    http_listen: str = "127.0.0.1:8080"
    grpc_listen: str = "127.0.0.1:50054"
    clickhouse_dsn: str = "chdb://./var/clickhouse/reports"
