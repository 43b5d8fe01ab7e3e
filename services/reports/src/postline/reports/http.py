"""The reports HTTP API (the console joins it here).

Auth as the send API: ``Authorization: Bearer <api user>:<secret>`` or HTTP Basic; an API user
sees its own server's rows only. Every error is JSON ``{"error": {"code", "message", "field"}}``
with a 4xx status.

GET /api/v1/deliveries, /api/v1/errors            search: 100 results at most, 10 per page
GET /api/v1/deliveries.csv, /api/v1/errors.csv    every match, streamed
GET /api/v1/deliveries/live                       the newest 100 deliveries of today
GET /api/v1/deliveries/{delivery_id}              one delivery's full history
GET /api/v1/stats/{name}                          see stats.py for the names
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from postline.common.credentials import Credentials, Principal, parse_authorization
from postline.common.health import Readiness
from postline.reports.queries import Forbidden, NotFound, ReportQueries
from postline.reports.search import SearchError


def error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status)


def create_app(queries: ReportQueries, ready: Callable[[], bool] | None = None) -> FastAPI:
    app = FastAPI(title="Postline reports", version="1")
    credentials = Credentials(queries.policy)

    async def authenticate(request: Request) -> Principal | None:
        parsed = parse_authorization(request.headers.get("authorization", ""))
        if parsed is None:
            return None
        client_ip = request.client.host if request.client else ""
        # argon2 is slow on purpose: keep it off the event loop.
        return await asyncio.to_thread(credentials.check, *parsed, client_ip)

    async def answer(
        request: Request, run: Callable[[Principal, dict[str, str]], Awaitable[Any]]
    ) -> Response:
        principal = await authenticate(request)
        if principal is None:
            return error(401, "unauthorized", "valid API user credentials are required")
        try:
            result = await run(principal, dict(request.query_params))
        except SearchError as exc:
            return error(400, "invalid_parameter", exc.message, exc.field)
        except Forbidden as exc:
            return error(403, "forbidden", exc.message, exc.field)
        except NotFound as exc:
            return error(404, "not_found", exc.message)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    def csv_route(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def export(request: Request) -> Response:
            async def run(principal: Principal, params: dict[str, str]) -> Response:
                q = queries.export_query(kind, principal, params)
                return StreamingResponse(
                    queries.export(kind, q),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'},
                )

            return await answer(request, run)

        return export

    @app.get("/api/v1/deliveries")
    async def deliveries(request: Request) -> Response:
        """Delivery log: start, end (YYYY-MM-DD) mandatory; status, address, api_user, page,
        tz."""
        return await answer(request, lambda p, q: queries.search("deliveries", p, q))

    @app.get("/api/v1/errors")
    async def errors(request: Request) -> Response:
        """Error log: start, end (YYYY-MM-DD) mandatory; error, address, api_user, page, tz."""
        return await answer(request, lambda p, q: queries.search("errors", p, q))

    app.add_api_route("/api/v1/deliveries.csv", csv_route("deliveries"), methods=["GET"])
    app.add_api_route("/api/v1/errors.csv", csv_route("errors"), methods=["GET"])

    @app.get("/api/v1/deliveries/live")
    async def live(request: Request) -> Response:
        """The newest 100 deliveries accepted today (in tz), each in its current state."""
        return await answer(request, queries.live)

    @app.get("/api/v1/deliveries/{delivery_id}")
    async def delivery(request: Request, delivery_id: str) -> Response:
        """One delivery: every event (attempt, reply), every classified error, trace ids."""
        return await answer(request, lambda p, q: queries.history(p, delivery_id, q))

    @app.get("/api/v1/stats/{name}")
    async def stats(request: Request, name: str) -> Response:
        """A statistic: start, end mandatory; tz; interval, domain, limit where they apply."""
        return await answer(request, lambda p, q: queries.stats(name, p, q))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response("ok\n", media_type="text/plain")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if isinstance(ready, Readiness):  # the service's: says what is not ready
            status, body = ready.answer()
            return Response(body, status_code=status, media_type="text/plain")
        ok = ready is not None and ready()
        return Response("ready\n" if ok else "not ready\n", status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
