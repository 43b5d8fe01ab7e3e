"""Every HTTP error of the ingress app as ``{"error": {"code", "message", "field"}}``.

FastAPI's own shapes (its 422 ``detail`` list, Starlette's 404/405) are replaced, and an
unexpected exception is logged and answered with a bare 500, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postline.ingress import metrics
from postline.ingress.api import errors
from postline.ingress.api.errors import ApiError, from_validation_errors

logger = logging.getLogger(__name__)

_CHALLENGE = 'Bearer realm="postline", Basic realm="postline", charset="UTF-8"'
_HTTP_CODES = {
    400: errors.INVALID_JSON,  # FastAPI could not read the body at all
    404: errors.NOT_FOUND,
    405: errors.METHOD_NOT_ALLOWED,
    413: errors.REQUEST_TOO_LARGE,
}


def error_response(error: ApiError) -> JSONResponse:
    metrics.REJECTED.labels(metrics.API, str(error.status)).inc()
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = _CHALLENGE
    elif error.status in (429, 503):
        headers["Retry-After"] = str(error.retry_after or errors.RETRY_AFTER_SECONDS)
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(from_validation_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        response = error_response(ApiError(exc.status_code, code, str(exc.detail)))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return error_response(ApiError(500, errors.INTERNAL_ERROR, "internal error"))


class BodyLimit:
    """Refuse request bodies over ``limit()`` bytes before anything reads them into memory
    (a callable: the limit follows the policy's ``max_message_size`` when it is reloaded)."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self._limit = limit

    @property
    def limit(self) -> int:
        return self._limit()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # FastAPI passes an HTTPException from reading the body through as it is.
                raise StarletteHTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the request body exceeds {self.limit} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(413, errors.REQUEST_TOO_LARGE, self._message())
        await error_response(error)(scope, receive, send)
