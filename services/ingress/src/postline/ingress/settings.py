"""Ingress settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from postline.common.settings import ServiceSettings


class IngressSettings(ServiceSettings):
    smtp_listen: str = "127.0.0.1:2525"
    smtp_reuse_port: bool = Field(
        default=False,
        description="share the SMTP port with other ingress processes on this host "
        "(SO_REUSEPORT: the kernel spreads connections over them)",
    )
    http_listen: str = "127.0.0.1:8025"
    grpc_listen: str = "127.0.0.1:50051"
    tls_cert: Path | None = Field(default=None, description="PEM certificate chain for STARTTLS")
    tls_key: Path | None = Field(default=None, description="PEM private key for STARTTLS")
    hostname: str = "postline.localhost"
    publish_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds to wait for RabbitMQ's confirm before answering 451 4.3.0",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> IngressSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set POSTLINE_TLS_CERT and POSTLINE_TLS_KEY together, or neither")
        return self
