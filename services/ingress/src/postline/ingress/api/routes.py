"""The HTTP door of the send API: `POST /api/v1/send` and `POST /api/v1/send/bulk`.

No `from __future__ import annotations` here: FastAPI reads the handlers' annotations at
run time, and they refer to names local to `send_router`.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response, Security
from fastapi.openapi.models import HTTPBase as HTTPBaseModel
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from postline.common.credentials import Principal
from postline.ingress.api.models import (
    BulkRequest,
    BulkResponse,
    ErrorResponse,
    SendRequest,
    SendResponse,
)
from postline.ingress.api.service import IDEMPOTENCY_KEY_MAX, SendApi, SendOutcome

REPLAYED_HEADER = "Idempotent-Replayed"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not JSON."},
    401: {
        "model": ErrorResponse,
        "description": "Missing or wrong credentials (`unauthorized`).",
    },
    403: {
        "model": ErrorResponse,
        "description": "The client address is not in the API user's `allowed_ips` "
        "(`ip_not_allowed`), or `server` is another user's (`server_not_allowed`).",
    },
    413: {
        "model": ErrorResponse,
        "description": "The message exceeds the server's `relay.max_message_size` "
        "(`message_too_large`), or the request body is too large (`request_too_large`).",
    },
    422: {
        "model": ErrorResponse,
        "description": "A field is missing or invalid; `field` names it (`missing_field`, "
        "`invalid_field`, `invalid_address`, `invalid_base64`, `invalid_header`, "
        "`reserved_header`, `missing_body`, `too_many_recipients`, "
        "`duplicate_recipient`, `missing_substitution`, `unknown_server`, "
        "`conflicting_field`, `invalid_raw_message`, `idempotency_key_reused`).",
    },
    429: {
        "model": ErrorResponse,
        "description": "Too many failed authentications of this API user or from this "
        "address: try again after `Retry-After` seconds (`too_many_failed_logins`).",
    },
    503: {
        "model": ErrorResponse,
        "description": "The queue (RabbitMQ) is unavailable: nothing was accepted unless the "
        "message says otherwise; retry after `Retry-After` seconds (`unavailable`).",
    },
}

_IDEMPOTENCY_DOC = (
    "Makes a retry safe: a request repeated with the same key (by the same API user, within "
    "24 hours of its success) answers what the first one did, with header "
    f"`{REPLAYED_HEADER}: true`, and sends nothing again. The same key with a different "
    "request is refused (`idempotency_key_reused`). A request still in progress with the "
    "key makes the repeat wait for it. Failed requests are not remembered."
)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        pattern=r"^[\x20-\x7e]+$",
        description=_IDEMPOTENCY_DOC,
    ),
]


class _Scheme(SecurityBase):
    """Documents a scheme in OpenAPI; checking is `SendApi.authenticate`'s (for both)."""

    def __init__(self, name: str, model: HTTPBaseModel) -> None:
        self.scheme_name = name
        self.model = model

    async def __call__(self) -> None:
        return None


_BEARER = _Scheme(
    "bearer",
    HTTPBearerModel(
        bearerFormat="<api user>:<secret>",
        description="`Authorization: Bearer <api user>:<secret>`",
    ),
)
_BASIC = _Scheme(
    "basic",
    HTTPBaseModel(scheme="basic", description="HTTP Basic with the API user and secret."),
)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def send_router(api: SendApi) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["send"], responses=ERROR_RESPONSES)

    async def principal(
        request: Request,
        _bearer: Annotated[None, Security(_BEARER)],
        _basic: Annotated[None, Security(_BASIC)],
    ) -> Principal:
        return await api.authenticate(request.headers.get("authorization"), client_ip(request))

    Sender = Annotated[Principal, Depends(principal)]

    @router.post(
        "/send",
        status_code=202,
        response_model=SendResponse,
        summary="Send one message",
        response_description="Accepted: one delivery per recipient is queued.",
    )
    async def send(
        body: SendRequest,
        sender: Sender,
        request: Request,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> SendResponse:
        """One message to the `to` recipients: composed from `text`/`html`,
        `attachments` and `headers`, or given whole as `raw`."""
        outcome = await api.send(
            sender, body, client_ip=client_ip(request), idempotency_key=idempotency_key
        )
        return _answered(outcome, response)

    @router.post(
        "/send/bulk",
        status_code=202,
        response_model=BulkResponse,
        summary="Send one template to many recipients",
        response_description="Accepted: one message per recipient is queued.",
    )
    async def send_bulk(
        body: BulkRequest,
        sender: Sender,
        request: Request,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> BulkResponse:
        """Each recipient gets its own message (own `message_id`), with the template's
        `{{name}}` placeholders filled from its `substitutions`. Everything is checked
        before anything is sent."""
        outcome = await api.send_bulk(
            sender, body, client_ip=client_ip(request), idempotency_key=idempotency_key
        )
        return _answered(outcome, response)

    return router


def _answered(outcome: SendOutcome[Any], response: Response) -> Any:
    if outcome.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return outcome.answer
