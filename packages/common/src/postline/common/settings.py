"""The settings base every service's settings class derives from.

Settings come from environment variables (``POSTLINE_*``) only; nothing else in Postline reads
``os.environ``. Required values have no default, so a missing one fails at start-up naming the
variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service needs: the broker, the policy file, the shard count, telemetry."""

    model_config = SettingsConfigDict(env_prefix="POSTLINE_", extra="ignore")

    amqp_url: str = Field(description="RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/")
    policy: Path = Field(description="path of postline.yaml")
    policy_reload_interval: float = Field(
        default=5.0,
        ge=0,
        description="seconds between looks at the policy file for a change (0: never)",
    )
    shards: int = Field(default=4, ge=1, le=256, description="scheduler shard count (constant)")
    queue_type: Literal["classic", "quorum"] = Field(
        default="classic",
        description="durable queues: classic, or quorum (replicated in a RabbitMQ cluster); "
        "the same for every service (postline.common.broker.topology)",
    )
    log_level: str = "INFO"
    otel_exporter: str = Field(default="none", pattern="^(none|console|otlp)$")
    otlp_protocol: Literal["grpc", "http/protobuf"] = Field(
        default="grpc",
        # OpenTelemetry's own variables: the exporter reads the endpoint, headers, timeout...
        # itself; which exporter to make is ours to choose.
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL", "otlp_protocol"
        ),
        description="OTLP transport: grpc (port 4317) or http/protobuf (4318, the reports "
        "service's span receiver)",
    )
    health_listen: str = Field(default="", description="host:port of /healthz /readyz /metrics")
