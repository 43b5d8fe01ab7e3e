"""The reports service's refusals, each with its HTTP status and the code of the documented
error shape ``{"error": {"code", "message", "field"}}`` (gRPC maps them to its status codes).

A parameter error is :class:`postline.reports.params.SearchError` (400 ``invalid_parameter``).
"""

from __future__ import annotations


class ReportsError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(
        self, message: str, field: str | None = None, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after = retry_after


class Unauthorized(ReportsError):
    status = 401
    code = "unauthorized"


class Forbidden(ReportsError):
    status = 403
    code = "forbidden"


class NotFound(ReportsError):
    status = 404
    code = "not_found"


class Conflict(ReportsError):
    status = 409
    code = "conflict"


class Throttled(ReportsError):
    """Too many failed authentications from this account or address (429, Retry-After)."""

    status = 429
    code = "too_many_attempts"


class Unavailable(ReportsError):
    """A dependency (ClickHouse, the bounce service) cannot answer now (503)."""

    status = 503
    code = "unavailable"
