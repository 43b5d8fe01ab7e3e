"""The gRPC door of the send API: ``postline.v1.SendService`` (proto/postline/v1/send.proto).

Same rules as HTTP: a request becomes the same pydantic model and goes through the same
`SendApi`. Credentials travel in metadata (``authorization: Bearer <user>:<secret>``), an
idempotency key in metadata ``idempotency-key`` or the request's ``idempotency_key``. A refusal
maps its HTTP status to a gRPC code; the details read ``<field>: <message>`` and the trailing
metadata carries ``postline-error-code`` and ``postline-error-field``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import grpc
from pydantic import BaseModel, ValidationError

from postline.common.credentials import Principal
from postline.common.runtime import split_listen
from postline.common.telemetry import grpc_server_interceptors
from postline.ingress import metrics
from postline.ingress.api import errors
from postline.ingress.api.errors import ApiError, from_validation_errors, invalid
from postline.ingress.api.models import BulkRequest, SendRequest, SendResponse
from postline.ingress.api.service import IDEMPOTENCY_FIELD, SendApi
from postline.v1 import send_pb2, send_pb2_grpc

logger = logging.getLogger(__name__)

R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_REPLAYED = (("idempotent-replayed", "true"),)
# Base64 is not needed on gRPC, but bulk recipient lists and the template still need room.
_MESSAGE_OVERHEAD = 16 * 1024 * 1024


class SendServicer(send_pb2_grpc.SendServiceServicer):
    def __init__(self, api: SendApi) -> None:
        self.api = api

    async def Send(
        self, request: send_pb2.SendRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> send_pb2.SendResponse:
        async def run() -> send_pb2.SendResponse:
            principal = await self._principal(context)
            outcome = await self.api.send(
                principal,
                _model(SendRequest, _send_fields(request)),
                client_ip=peer_ip(context.peer()),
                idempotency_key=_key(context, request.idempotency_key),
            )
            if outcome.replayed:
                await context.send_initial_metadata(_REPLAYED)
            return _response(outcome.answer)

        return await _answering(context, run)

    async def SendBulk(
        self, request: send_pb2.SendBulkRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> send_pb2.SendBulkResponse:
        async def run() -> send_pb2.SendBulkResponse:
            principal = await self._principal(context)
            try:
                outcome = await self.api.send_bulk(
                    principal,
                    _model(BulkRequest, _bulk_fields(request)),
                    client_ip=peer_ip(context.peer()),
                    idempotency_key=_key(context, request.template.idempotency_key),
                )
            except ApiError as exc:
                raise _in_template(exc) from None
            if outcome.replayed:
                await context.send_initial_metadata(_REPLAYED)
            return send_pb2.SendBulkResponse(
                messages=[_response(m) for m in outcome.answer.messages]
            )

        return await _answering(context, run)

    async def _principal(self, context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
        metadata = {k.lower(): v for k, v in context.invocation_metadata() or ()}
        authorization = metadata.get("authorization")
        return await self.api.authenticate(
            authorization if isinstance(authorization, str) else None, peer_ip(context.peer())
        )


class GrpcServer:
    """``SendService`` on ``host:port`` (port 0 picks a free one: see `port`)."""

    def __init__(self, api: SendApi, listen: str) -> None:
        host, port = split_listen(listen)
        if port > 65535:
            raise ValueError(f"gRPC listen port out of range: {listen!r}")
        limit = api.max_message_size + _MESSAGE_OVERHEAD
        self._server = grpc.aio.server(
            interceptors=grpc_server_interceptors(),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # A port in use is an error, not a port silently shared with another process.
                ("grpc.so_reuseport", 0),
            ],
        )
        send_pb2_grpc.add_SendServiceServicer_to_server(SendServicer(api), self._server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {listen}")

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float = 5.0) -> None:
        await self._server.stop(grace)


def peer_ip(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` (maybe %-encoded) to the address."""
    kind, _, rest = unquote(peer).partition(":")
    if kind not in ("ipv4", "ipv6"):
        return ""
    return rest.rpartition(":")[0].strip("[]")


async def _answering(
    context: grpc.aio.ServicerContext[Any, Any], run: Callable[[], Awaitable[R]]
) -> R:
    try:
        return await run()
    except ApiError as exc:
        await _abort(context, exc)
    except Exception:
        logger.exception("%s gRPC send failed", context.peer())
        await _abort(context, ApiError(500, errors.INTERNAL_ERROR, "internal error"))
    raise AssertionError("abort() returned")  # pragma: no cover


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: ApiError) -> None:
    details = f"{error.field}: {error.message}" if error.field else error.message
    trailing = [("postline-error-code", error.code)]
    if error.field:
        trailing.append(("postline-error-field", error.field))
    if error.retry_after is not None:
        trailing.append(("retry-after", str(error.retry_after)))
    code = _CODES.get(error.status, grpc.StatusCode.INTERNAL)
    metrics.REJECTED.labels(metrics.API, str(error.status)).inc()
    await context.abort(code, details, trailing_metadata=tuple(trailing))


def _key(context: grpc.aio.ServicerContext[Any, Any], field: str) -> str | None:
    metadata = {k.lower(): v for k, v in context.invocation_metadata() or ()}
    value = metadata.get("idempotency-key")
    return value if isinstance(value, str) else (field or None)


def _model(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_errors(exc.errors()) from None


def _template_fields(t: send_pb2.SendRequest) -> dict[str, Any]:
    # proto3 has no "absent" for strings: empty means not given.
    return {
        "from": getattr(t, "from") or None,
        "from_name": t.from_name or None,
        "subject": t.subject or None,
        "text": t.text or None,
        "html": t.html or None,
        "headers": dict(t.headers),
        "api_data": t.api_data or None,
        "server": t.server or None,
        "envelope_from": t.envelope_from or None,
        "attachments": [_attachment_fields(a) for a in t.attachments],
        "ret": t.ret or None,
        "envid": t.envid or None,
        "notify": list(t.notify) or None,
    }


def _attachment_fields(attachment: send_pb2.Attachment) -> dict[str, Any]:
    fields = {
        "filename": attachment.filename or None,
        "content_type": attachment.content_type or None,
        "content": base64.b64encode(attachment.content).decode(),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _send_fields(request: send_pb2.SendRequest) -> dict[str, Any]:
    fields = _template_fields(request)
    fields["to"] = list(request.to)
    fields["recipient_options"] = {
        address: {"notify": list(options.notify) or None, "orcpt": options.orcpt or None}
        for address, options in request.recipient_options.items()
    }
    if request.raw:
        fields["raw"] = base64.b64encode(request.raw).decode()
    return fields


def _bulk_fields(request: send_pb2.SendBulkRequest) -> dict[str, Any]:
    if request.template.raw:
        raise invalid(errors.CONFLICTING_FIELD, "a bulk template cannot be raw", "raw")
    fields = _template_fields(request.template)
    fields["recipients"] = [
        {
            "to": r.to,
            "substitutions": dict(r.substitutions),
            "api_data": r.api_data or None,
            "notify": list(r.notify) or None,
            "orcpt": r.orcpt or None,
        }
        for r in request.recipients
    ]
    return fields


def _in_template(error: ApiError) -> ApiError:
    """Name template fields as the proto does: ``template.subject``, ``recipients[3].to``."""
    if error.field is None or error.field.startswith("recipients"):
        return error
    if error.field == IDEMPOTENCY_FIELD:
        return error
    return error.prefixed(("template",))


def _response(answer: SendResponse) -> send_pb2.SendResponse:
    return send_pb2.SendResponse(
        message_id=answer.message_id,
        deliveries=[
            send_pb2.RecipientDelivery(recipient=d.recipient, delivery_id=d.delivery_id)
            for d in answer.deliveries
        ],
    )
