"""Sender settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from pydantic import Field

from postline.common.settings import ServiceSettings


class SenderSettings(ServiceSettings):
    concurrency: int = Field(default=20, ge=1, le=1000)
    health_listen: str = "127.0.0.1:9103"
    hostname: str = "postline.localhost"
    # RFC 5321 §4.5.3.2 suggests minutes per step; one generous bound per attempt here.
    smtp_timeout: float = 300.0
