"""The reports HTTP API: delivery log and error log search (the console joins it here).

Auth as the send API: ``Authorization: Bearer <api user>:<secret>`` or HTTP Basic. An API user
sees its own server's rows only.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from postline.common.credentials import Credentials, Principal, parse_authorization
from postline.common.policy import Policy
from postline.reports.search import SearchError, deliveries_sql, errors_sql, page_of, parse_query
from postline.reports.store import Store


def error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status)


def create_app(store: Store, policy: Policy, ready: object = None) -> FastAPI:
    app = FastAPI(title="Postline reports", version="1")
    credentials = Credentials(policy)

    def authenticate(request: Request) -> Principal | JSONResponse:
        parsed = parse_authorization(request.headers.get("authorization", ""))
        client_ip = request.client.host if request.client else ""
        principal = credentials.check(*parsed, client_ip) if parsed else None
        if principal is None:
            return error(401, "unauthorized", "valid API user credentials are required")
        return principal

    async def search(request: Request, kind: str) -> JSONResponse:
        principal = authenticate(request)
        if isinstance(principal, JSONResponse):
            return principal
        params = dict(request.query_params)
        if kind == "errors" and "error" in params:
            params["status"] = params.pop("error")
        params["server"] = principal.server
        try:
            query = parse_query(params, kind=kind)
        except SearchError as exc:
            field = "error" if kind == "errors" and exc.field == "status" else exc.field
            return error(400, "invalid_parameter", exc.message, field)
        sql, sql_params = deliveries_sql(query) if kind == "deliveries" else errors_sql(query)
        rows = await store.query(sql, sql_params)
        return JSONResponse(page_of(rows, query.page))

    @app.get("/api/v1/deliveries")
    async def deliveries(request: Request) -> JSONResponse:
        """Delivery log: start, end (YYYY-MM-DD) mandatory; status, address, api_user, page."""
        return await search(request, "deliveries")

    @app.get("/api/v1/errors")
    async def errors(request: Request) -> JSONResponse:
        """Error log search: start, end (YYYY-MM-DD) mandatory; error, address, api_user, page."""
        return await search(request, "errors")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response("ok\n", media_type="text/plain")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        ok = callable(ready) and bool(ready())
        return Response("ready\n" if ok else "not ready\n", status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
