"""Reports settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from postline.common.settings import ServiceSettings
from postline.reports.webhooks.poster import PostSettings


class ReportsSettings(ServiceSettings):
    http_listen: str = "127.0.0.1:8080"
    grpc_listen: str = "127.0.0.1:50054"
    clickhouse_dsn: str = "chdb://./var/clickhouse/reports"
    # Large inserts: every insert makes a part in each table a view feeds, and parts must be
    # merged; bench/reports measured 20,000 events a batch well ahead of 5,000.
    batch_size: int = Field(
        default=20_000, ge=1, le=100_000, description="broker messages per insert"
    )
    batch_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description="bytes of events per insert (messages may hold many events)",
    )
    batch_wait: float = Field(
        default=1.0, gt=0, le=60, description="seconds a batch waits to fill before it is written"
    )
    batch_retry: float = Field(
        default=30.0,
        ge=0,
        # POSTLINE_BATCH_HOLD is its name before 2026-12 ("held" is kept for prohibited hours).
        validation_alias=AliasChoices("POSTLINE_BATCH_RETRY", "POSTLINE_BATCH_HOLD", "batch_retry"),
        description="seconds a failing batch is retried in place before it goes back to the queue",
    )
    ingest_journal: str = Field(
        default="",
        description="directory of inserts begun and not yet ended, sent again after a crash "
        "(postline.reports.journal); empty: beside the embedded ClickHouse's data "
        "(<path>.journal), or ./var/reports-journal with a ClickHouse server",
    )
    otlp_listen: str = Field(
        default="127.0.0.1:4318",
        description="host:port of the OTLP/HTTP span receiver (spans into otel_traces); "
        "empty: none",
    )
    query_threads: int = Field(default=2, ge=1, le=64, description="concurrent ClickHouse reads")
    bounce_grpc: str = Field(
        default="127.0.0.1:50053",
        description="bounce's gRPC Suppressions API (the console's and API's suppressions)",
    )
    console_session_ttl: float = Field(
        default=8 * 3600.0, ge=60, le=30 * 86400, description="seconds a console session lasts"
    )
    console_assets: str = Field(
        default="",
        description="the console's npm packages (node_modules); empty: the repository's "
        "services/reports/console/node_modules",
    )
    # Webhooks (see postline.reports.webhooks.poster).
    webhook_batch_size: int = Field(default=100, ge=1, le=1000, description="events per POST")
    webhook_batch_wait: float = Field(
        default=1.0, gt=0, le=60, description="seconds a webhook batch waits to fill"
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, le=300, description="seconds an endpoint has to answer"
    )
    webhook_retry_first: float = Field(
        default=5.0, gt=0, le=600, description="first retry delay (seconds), then doubling"
    )
    webhook_retry_max: float = Field(
        default=600.0,
        gt=0,
        le=1200,
        description="longest retry delay (seconds; below RabbitMQ's 30 min consumer timeout)",
    )
    webhook_retry_for: float = Field(
        default=86_400.0, gt=0, description="seconds a batch is retried before it is given up"
    )

    def journal_path(self) -> Path:
        if self.ingest_journal:
            return Path(self.ingest_journal)
        if self.clickhouse_dsn.startswith("chdb://"):
            data = Path(self.clickhouse_dsn.removeprefix("chdb://"))
            return data.with_name(data.name + ".journal")
        return Path("var/reports-journal")

    def webhook_settings(self) -> PostSettings:
        return PostSettings(
            batch_size=self.webhook_batch_size,
            batch_wait=self.webhook_batch_wait,
            timeout=self.webhook_timeout,
            retry_first=self.webhook_retry_first,
            retry_max=self.webhook_retry_max,
            retry_for=self.webhook_retry_for,
        )
