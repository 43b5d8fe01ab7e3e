"""The ingress HTTP server: the send API, its OpenAPI document, probes and metrics."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from postline.common.broker import Broker
from postline.common.health import Readiness
from postline.common.telemetry import instrument_http
from postline.ingress.api import SendApi
from postline.ingress.api.http_errors import BodyLimit, install_error_handlers
from postline.ingress.api.routes import send_router

_DESCRIPTION = """\
Submit mail to Postline over HTTP. Every accepted recipient becomes one delivery, queued
(confirmed by RabbitMQ) before the answer `202`; follow it in the reports API by its
`delivery_id` or `message_id`.

Authenticate with `Authorization: Bearer <api user>:<secret>` or HTTP Basic; the client
address must be in the API user's `allowed_ips`. Every error is
`{"error": {"code": "...", "message": "...", "field": "..."}}`.
"""

# Base64 grows a message by a third; the rest is room for JSON and bulk recipient lists.
_BODY_OVERHEAD = 16 * 1024 * 1024


def broker_readiness(broker: Broker) -> Readiness:
    readiness = Readiness()
    readiness.add("rabbitmq", lambda: broker.problem)
    return readiness


def create_app(broker: Broker, send_api: SendApi, readiness: Readiness | None = None) -> FastAPI:
    """The send API with ``/healthz``, ``/readyz`` (the broker confirms publishes: without it
    nothing can be accepted) and ``/metrics``."""
    ready = readiness or broker_readiness(broker)
    app = FastAPI(title="Postline ingress", version="1", description=_DESCRIPTION)
    install_error_handlers(app)
    instrument_http(app)
    app.include_router(send_router(send_api))
    app.add_middleware(BodyLimit, limit=lambda: send_api.max_message_size * 2 + _BODY_OVERHEAD)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response("ok\n", media_type="text/plain")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        status, body = ready.answer()
        return Response(body, status_code=status, media_type="text/plain")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
