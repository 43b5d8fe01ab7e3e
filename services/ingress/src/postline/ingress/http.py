"""The ingress HTTP server: probes and metrics (the send API joins it here)."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from postline.common.broker import Broker


def create_app(broker: Broker) -> FastAPI:
    app = FastAPI(title="Postline ingress", version="1")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response("ok\n", media_type="text/plain")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        ok = broker.connected
        return Response("ready\n" if ok else "not ready\n", status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
