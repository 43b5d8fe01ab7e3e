"""The reports service over HTTP: the reports API (``/api/v1``), the console (every other
page) and the probes.

Auth: an API user's ``Authorization: Bearer <api user>:<secret>`` (or HTTP Basic), or a
console session cookie. An API user sees its own server's rows only; a console account every
server's. The policy's ``console.allowed_ips`` admits clients to all of it (the probes
excepted). Every API error is JSON ``{"error": {"code", "message", "field"}}`` with a 4xx
status (503 when ClickHouse or the bounce service cannot answer), documented in
``/openapi.json``.

GET /api/v1/deliveries, /api/v1/errors            search: 100 results at most, 10 per page
GET /api/v1/deliveries.csv, /api/v1/errors.csv    every match, streamed
GET /api/v1/errors/{event_id}                     one error-log row
GET /api/v1/deliveries/live                       the newest 100 deliveries of today
GET /api/v1/deliveries/{delivery_id}              one delivery's full history
GET /api/v1/stats/{name}                          see stats.py for the names
GET /api/v1/traces/{trace_id}                     one trace's spans (the delivery timeline)
GET/POST/DELETE /api/v1/suppressions              the suppression list (bounce's gRPC API)
GET /api/v1/settings                              the running policy, no secrets
GET /api/v1/accounts, /api/v1/operations          console administrators only
GET /api/v1/webhooks/attempts                     webhook POSTs (webhooks/api.py)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from fastapi.security import APIKeyCookie, HTTPBasic, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from postline.common.health import Readiness
from postline.common.telemetry import instrument_http
from postline.common.throttle import AuthThrottle
from postline.reports import api_models as m
from postline.reports.access import Caller, Gate
from postline.reports.console.accounts import Accounts
from postline.reports.console.assets import static_dir
from postline.reports.console.auth import ConsoleAuth
from postline.reports.console.oplog import OperationLog
from postline.reports.console.pages import (
    Console,
    LoginRequired,
    PageRefused,
    client_ip,
    console_router,
    words_for,
)
from postline.reports.console.render import render
from postline.reports.console.sessions import SESSION_COOKIE, Sessions
from postline.reports.console.views import menu
from postline.reports.errors import ReportsError, Unauthorized, Unavailable
from postline.reports.params import SearchError
from postline.reports.queries import ReportQueries
from postline.reports.suppressions import SuppressionsClient
from postline.reports.webhooks.api import WebhookAttempts, add_webhook_routes

logger = logging.getLogger(__name__)

PROBES = ("/healthz", "/readyz", "/metrics")
CSRF_HEADER = "x-csrf-token"


def error(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


class AllowedIps:
    """``console.allowed_ips`` in front of everything but the probes (plain ASGI, so a
    streamed CSV passes through untouched)."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else ""
        if self.gate.ip_allowed(ip):
            await self.app(scope, receive, send)
            return
        logger.info("%s refused by console.allowed_ips (%s)", ip, scope["path"])
        response: Response
        if scope["path"].startswith("/api/"):
            response = error(403, "forbidden", "this address may not use the reports API")
        else:
            response = Response(
                "403 Forbidden: this address may not use the console\n",
                status_code=403,
                media_type="text/plain",
            )
        await response(scope, receive, send)


@dataclass
class Parts:
    """What the HTTP app is made of (built by the composition root, or defaults for tests)."""

    queries: ReportQueries
    suppressions: SuppressionsClient | None = None
    throttle: AuthThrottle = field(default_factory=AuthThrottle)
    session_ttl: float = 8 * 3600.0
    assets: str = ""
    ready: Callable[[], bool] | None = None


# Documentation of the credentials (the handlers read the headers themselves).
_bearer = HTTPBearer(auto_error=False, description="Bearer <api user>:<secret>")
_basic = HTTPBasic(auto_error=False, description="an API user and its secret")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="console session")
_SECURITY = [Depends(_bearer), Depends(_basic), Depends(_cookie)]


def create_app(
    queries: ReportQueries, ready: Callable[[], bool] | None = None, **options: Any
) -> FastAPI:
    parts = Parts(queries, ready=ready, **options)
    policy = queries.policy_source  # read at each use: a reloaded policy file applies at once
    gate = Gate(policy, parts.throttle)
    accounts = Accounts(queries.store, policy)
    oplog = OperationLog(queries.store)
    sessions = Sessions(queries.store, parts.session_ttl)
    auth = ConsoleAuth(gate, accounts, sessions, oplog)
    console = Console(queries, gate, auth, accounts, oplog, parts.suppressions, parts.assets)

    app = FastAPI(
        title="Postline reports",
        version="1",
        description="The delivery log, the error log, CSV exports, statistics, the "
        "suppression list and the console's data. Errors are "
        '`{"error": {"code", "message", "field"}}`.',
        dependencies=_SECURITY,
    )
    app.add_middleware(AllowedIps, gate=gate)
    instrument_http(app)

    # --- errors in the documented shape (API) or in words (console) -------------------------

    @app.exception_handler(ReportsError)
    async def refused(request: Request, exc: ReportsError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return error(exc.status, exc.code, exc.message, exc.field, headers)

    @app.exception_handler(SearchError)
    async def invalid(request: Request, exc: SearchError) -> Response:
        return error(400, "invalid_parameter", exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path")]
        name = ".".join(location) or None
        message = str(first.get("msg", "invalid request"))
        if first.get("type") == "missing":
            message = f"{name} is required"
        elif name:
            message = f"{name}: {message}"
        return error(400, "invalid_parameter", message, name)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        if is_api(request):
            return error(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
        words = words_for(request)
        return render(
            request, "refused", words, {"message": words(f"refused.{code}"), "user": None},
            exc.status_code,
        )  # fmt: skip

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + _urlencode({"next": target}), 303)

    @app.exception_handler(PageRefused)
    async def page_refused(request: Request, exc: PageRefused) -> Response:
        words = words_for(request, exc.user)
        context: dict[str, Any] = {"message": words(exc.key)}
        if exc.user is not None:
            account = exc.user.account
            context.update(
                user=account,
                csrf=exc.user.session.csrf,
                menu=menu(words, account.is_admin, request.url.path),
            )
        return render(request, "refused", words, context, exc.status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # ClickHouse down, bounce unreachable, a bug: never a traceback to the client.
        logger.exception("%s %s failed", request.method, request.url.path)
        if is_api(request):
            return error(503, "unavailable", "the reports service cannot answer now; try again")
        words = words_for(request)
        return render(
            request, "refused", words, {"message": words("refused.unavailable"), "user": None},
            503,
        )  # fmt: skip

    # --- who asks ---------------------------------------------------------------------------

    async def caller_of(request: Request, *, changing: bool = False) -> Caller:
        header = request.headers.get("authorization")
        if header:
            return await gate.api_user(header, client_ip(request))
        user = await auth.user(request.cookies.get(SESSION_COOKIE))
        if user is None:
            raise Unauthorized("valid API user credentials or a console session are required")
        if changing and not user.session.csrf_ok(request.headers.get(CSRF_HEADER)):
            raise ReportsError(
                "a change made with a console session needs its X-CSRF-Token header", "csrf"
            )
        return user.caller

    async def answer(request: Request, run: Callable[[Caller], Awaitable[Any]]) -> Response:
        caller = await caller_of(request)
        return JSONResponse(await run(caller))

    def documented(
        model: type[Any], *extra: dict[int | str, dict[str, Any]]
    ) -> dict[int | str, dict[str, Any]]:
        responses: dict[int | str, dict[str, Any]] = {200: {"model": model}, **m.ERRORS}
        for more in extra:
            responses.update(more)
        return responses

    # --- searches and exports ---------------------------------------------------------------

    @app.get("/api/v1/deliveries", responses=documented(m.SearchAnswer))
    async def deliveries(request: Request, q: Annotated[m.DeliverySearch, Query()]) -> Response:
        """The delivery log: the newest 100 matches at most, 10 per page."""
        return await answer(request, lambda c: queries.search("deliveries", c, q.as_text()))

    @app.get("/api/v1/errors", responses=documented(m.SearchAnswer))
    async def errors(request: Request, q: Annotated[m.ErrorSearch, Query()]) -> Response:
        """The error log: the newest 100 matches at most, 10 per page."""
        return await answer(request, lambda c: queries.search("errors", c, q.as_text()))

    csv_doc: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "every match, UTF-8, LF; a transfer cut short (no final chunk) "
            "means the export broke off",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **m.ERRORS,
    }

    async def export(request: Request, kind: str, params: dict[str, str]) -> Response:
        caller = await caller_of(request)
        q = queries.export_query(kind, caller, params)
        try:
            body = await queries.export(kind, q)
        except Exception as exc:
            logger.error("%s export could not start: %s", kind, exc)
            raise Unavailable("the export cannot be read now; try again") from None
        return StreamingResponse(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'},
        )

    @app.get("/api/v1/deliveries.csv", response_class=Response, responses=csv_doc)
    async def deliveries_csv(request: Request, q: Annotated[m.DeliveryExport, Query()]) -> Response:
        """Every delivery-log match as CSV, streamed (403 without the server's csv_download)."""
        return await export(request, "deliveries", q.as_text())

    @app.get("/api/v1/errors.csv", response_class=Response, responses=csv_doc)
    async def errors_csv(request: Request, q: Annotated[m.ErrorExport, Query()]) -> Response:
        """Every error-log match as CSV, streamed (403 without the server's csv_download)."""
        return await export(request, "errors", q.as_text())

    @app.get("/api/v1/errors/{event_id}", responses=documented(m.ErrorRowDetail, m.NOT_FOUND))
    async def error_row(
        request: Request, event_id: str, q: Annotated[m.Scope, Query()]
    ) -> Response:
        """One error-log row by its id (``eventId`` in the error rows)."""
        return await answer(request, lambda c: queries.error(c, event_id, q.as_text()))

    @app.get("/api/v1/deliveries/live", responses=documented(m.LiveAnswer))
    async def live(request: Request, q: Annotated[m.Scope, Query()]) -> Response:
        """The newest 100 deliveries accepted today (in tz), each in its current state."""
        return await answer(request, lambda c: queries.live(c, q.as_text()))

    @app.get("/api/v1/deliveries/{delivery_id}", responses=documented(m.History, m.NOT_FOUND))
    async def delivery(
        request: Request, delivery_id: str, q: Annotated[m.Scope, Query()]
    ) -> Response:
        """One delivery: every event (attempt, reply), every classified error, trace ids."""
        return await answer(request, lambda c: queries.history(c, delivery_id, q.as_text()))

    @app.get("/api/v1/traces/{trace_id}", responses=documented(m.TraceAnswer, m.NOT_FOUND))
    async def trace(request: Request, trace_id: str, q: Annotated[m.Scope, Query()]) -> Response:
        """One trace's spans, oldest first (the console's delivery timeline), with the spans
        of bounce mails linked to it."""
        return await answer(request, lambda c: queries.trace(c, trace_id, q.as_text()))

    @app.get("/api/v1/stats/{name}", responses=documented(m.StatsAnswer, m.NOT_FOUND))
    async def stats(request: Request, name: str, q: Annotated[m.StatsParams, Query()]) -> Response:
        """A statistic: deliveries, domains, errors, daily, monthly, days-of-month,
        days-of-week, hours, mx-hosts, senders, reply-codes."""
        return await answer(request, lambda c: queries.stats(name, c, q.as_text()))

    add_webhook_routes(app, answer, documented, WebhookAttempts(queries))

    @app.get("/api/v1/settings", responses=documented(m.SettingsAnswer))
    async def settings(request: Request, q: Annotated[m.Scope, Query()]) -> Response:
        """The running policy of each server the caller sees (never a secret or a hash)."""
        caller = await caller_of(request)
        return JSONResponse(queries.settings(caller, q.as_text()))

    # --- suppressions -----------------------------------------------------------------------

    def bounce() -> SuppressionsClient:
        if parts.suppressions is None:
            raise Unavailable("no bounce service is configured for the suppression list")
        return parts.suppressions

    @app.get("/api/v1/suppressions", responses=documented(m.SuppressionList))
    async def suppressions(
        request: Request, q: Annotated[m.SuppressionSearch, Query()]
    ) -> Response:
        """The suppression list (delivery blocking), 20 per page, newest first."""
        return await answer(request, lambda c: bounce().list(c, q.as_text()))

    @app.post("/api/v1/suppressions", status_code=201, responses=documented(m.Suppression))
    async def add_suppression(
        request: Request,
        body: m.NewSuppression,
        tz: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        """Block an address: its deliveries fail at once with error status 10."""
        caller = await caller_of(request, changing=True)
        caller.require_change()
        added = await bounce().add(caller, body.model_dump(exclude_none=True), tz)
        await oplog.record(
            caller.name, client_ip(request), "suppression_added", added["address"],
            f"server {added['server']}",
        )  # fmt: skip
        return JSONResponse(added, status_code=201)

    @app.delete("/api/v1/suppressions/{address}", responses=documented(m.Removed, m.NOT_FOUND))
    async def remove_suppression(
        request: Request,
        address: str,
        server: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        """Unblock an address (404 when it is not on the list)."""
        caller = await caller_of(request, changing=True)
        caller.require_change()
        removed = await bounce().remove(caller, address, server)
        if not removed:
            return error(404, "not_found", f"{address} is not on the suppression list")
        await oplog.record(
            caller.name, client_ip(request), "suppression_removed", address.lower(),
            f"server {server or caller.server or ''}".strip(),
        )  # fmt: skip
        return JSONResponse({"removed": True})

    # --- console data (administrators) ------------------------------------------------------

    @app.get("/api/v1/accounts", responses=documented(m.AccountsAnswer))
    async def account_list(request: Request) -> Response:
        """Console accounts (administrators only; never a hash or a secret)."""
        caller = await caller_of(request)
        caller.require_admin()
        found = await accounts.all()
        return JSONResponse(
            {
                "results": [
                    {
                        "email": a.email, "role": a.role, "language": a.language,
                        "timezone": a.timezone, "totp": a.has_totp, "disabled": a.disabled,
                        "inPolicy": a.in_policy,
                    }
                    for a in found
                ]
            }
        )  # fmt: skip

    @app.get("/api/v1/operations", responses=documented(m.OperationAnswer))
    async def operations(request: Request, q: Annotated[m.OperationSearch, Query()]) -> Response:
        """The operation log: log-ins, failures, log-outs and changes (administrators only)."""
        caller = await caller_of(request)
        caller.require_admin()
        return JSONResponse(await oplog.search(q.as_text()))

    # --- probes -----------------------------------------------------------------------------

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response("ok\n", media_type="text/plain")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if isinstance(parts.ready, Readiness):  # the service's: says what is not ready
            status, body = parts.ready.answer()
            return Response(body, status_code=status, media_type="text/plain")
        is_ready = parts.ready is not None and parts.ready()
        return Response(
            "ready\n" if is_ready else "not ready\n", status_code=200 if is_ready else 503
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(console_router(console))  # before /static: it serves /static/vendor
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    app.state.console = console
    return app


def _urlencode(values: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(values)
