"""What the schemathesis runs over Postline's APIs (send and reports) share: the checks every
generated request's answer must pass, and the app seen from the loopback address."""

from __future__ import annotations

from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import Receive, Scope, Send

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class FromLoopback:
    """The app as seen from 127.0.0.1 (schemathesis' client says "testclient")."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": ("127.0.0.1", 40000)}
        await self.app(scope, receive, send)
