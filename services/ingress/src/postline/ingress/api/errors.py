"""The send API's errors: one exception, a fixed set of codes, and how a door reports them.

Every refusal is an `ApiError` carrying an HTTP status, a stable machine-readable ``code``, a
human message and (for validation) the ``field`` at fault as a dotted/indexed path such as
``to[2]``, ``recipients[5].to`` or ``attachments[0].content``. The HTTP door renders it as
``{"error": {"code", "message", "field"}}``; the gRPC door maps the status to a gRPC code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from postline.common.policy.base import dotted

# Codes, by status. They are part of the API: clients branch on them, so rename none.
INVALID_JSON = "invalid_json"  # 400
UNAUTHORIZED = "unauthorized"  # 401
IP_NOT_ALLOWED = "ip_not_allowed"  # 403
SERVER_NOT_ALLOWED = "server_not_allowed"  # 403
NOT_FOUND = "not_found"  # 404
METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
MESSAGE_TOO_LARGE = "message_too_large"  # 413: over relay.max_message_size
REQUEST_TOO_LARGE = "request_too_large"  # 413: the request itself
MISSING_FIELD = "missing_field"  # 422 ...
INVALID_FIELD = "invalid_field"  # wrong type or shape (from the schema)
INVALID_ADDRESS = "invalid_address"
INVALID_BASE64 = "invalid_base64"
INVALID_HEADER = "invalid_header"
RESERVED_HEADER = "reserved_header"
INVALID_RAW_MESSAGE = "invalid_raw_message"
CONFLICTING_FIELD = "conflicting_field"
MISSING_BODY = "missing_body"
DUPLICATE_RECIPIENT = "duplicate_recipient"
TOO_MANY_RECIPIENTS = "too_many_recipients"
MISSING_SUBSTITUTION = "missing_substitution"
UNKNOWN_SERVER = "unknown_server"
IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
TOO_MANY_FAILED_LOGINS = "too_many_failed_logins"  # 429: failed authentications throttled
UNAVAILABLE = "unavailable"  # 503
INTERNAL_ERROR = "internal_error"  # 500: a bug; logged, never a traceback to the client

RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """A refused request: HTTP ``status``, stable ``code``, ``message`` and the ``field``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" ({field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after  # seconds (429, 503)

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            detail["field"] = self.field
        return {"error": detail}

    def prefixed(self, prefix: Sequence[str | int]) -> ApiError:
        """The same error with its field nested under ``prefix`` (``template.subject``)."""
        if self.field is None or not prefix:
            return self
        return ApiError(self.status, self.code, self.message, f"{dotted(prefix)}.{self.field}")


def invalid(code: str, message: str, *loc: str | int) -> ApiError:
    """A 422 naming the field at ``loc`` (``invalid(INVALID_ADDRESS, why, "to", 2)``)."""
    return ApiError(422, code, message, field_path(loc))


def unauthorized(message: str) -> ApiError:
    return ApiError(401, UNAUTHORIZED, message)


def throttled(seconds: int) -> ApiError:
    return ApiError(
        429,
        TOO_MANY_FAILED_LOGINS,
        f"too many failed authentications; try again in {seconds} s",
        retry_after=seconds,
    )


def unavailable(message: str) -> ApiError:
    return ApiError(503, UNAVAILABLE, message)


def field_path(loc: Iterable[str | int]) -> str:
    """``("recipients", 5, "to")`` -> ``recipients[5].to``; header names stay as they are."""
    return dotted(loc)


def from_validation_errors(errors: Sequence[Any]) -> ApiError:
    """The first of pydantic's errors (of a request body or header) as an `ApiError`.

    ``loc`` starts with where the value came from (``body``, ``header``) when FastAPI validated
    it, and with the field itself when the gRPC door validated a model directly.
    """
    first = errors[0] if errors else {"type": "value_error", "loc": (), "msg": "invalid request"}
    kind = str(first.get("type", ""))
    loc = tuple(first.get("loc", ()))
    if loc and loc[0] in ("body", "header", "query", "path"):
        loc = loc[1:]
    if kind == "json_invalid":
        reason = first.get("ctx", {}).get("error", "malformed JSON")
        return ApiError(400, INVALID_JSON, f"request body is not valid JSON: {reason}")
    message = str(first.get("msg", "invalid value"))
    if kind == "missing":
        return ApiError(422, MISSING_FIELD, "field required", field_path(loc) or None)
    if kind == "extra_forbidden":
        message = "unknown field"
    return ApiError(422, INVALID_FIELD, message, field_path(loc) or None)
