"""Ingress settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from pathlib import Path

from postline.common.settings import ServiceSettings


class IngressSettings(ServiceSettings):
    smtp_listen: str = "127.0.0.1:2525"
    http_listen: str = "127.0.0.1:8025"
    grpc_listen: str = "127.0.0.1:50051"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    hostname: str = "postline.localhost"
