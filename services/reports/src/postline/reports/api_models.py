"""The reports API's parameters and answers as typed models, so that ``/openapi.json`` lists
every parameter, response shape and error (the send API's way).

Parameters are validated here for their form (a date's digits, a status among its values, a
number's bounds) and again by the query code for their meaning (an end before its start, an
unknown time zone): gRPC and the console call that code with the same parameters as text.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from postline.reports.search import MAX_PAGE
from postline.reports.stats import MAX_TOP

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


class ErrorStatus(IntEnum):
    """The error statuses of stats.ERROR_STATUS_NAMES."""

    UNKNOWN_HOST = 1
    UNKNOWN_USER = 2
    RESEND_TIMEOUT = 3
    RECEIPT_REJECTION = 4
    OVER_CAPACITY = 5
    FORWARDING_ERROR = 6
    RECEIVING_SERVER_ERROR = 7
    OVERSIZE = 8
    ADDRESS_FORMAT_ERROR = 9
    BLOCKED_ADDRESS = 10
    OTHER = 99


def _date(description: str) -> Any:
    return Field(
        description=description,
        pattern=DATE_PATTERN,
        examples=["2026-11-01"],
        json_schema_extra={"format": "date"},
    )


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def as_text(self) -> dict[str, str]:
        """The parameters as the query code takes them (what gRPC and the console pass)."""
        return {k: str(v) for k, v in self.model_dump(mode="json", exclude_none=True).items()}


class Scope(_Params):
    server: Annotated[
        str | None,
        Field(
            max_length=200,
            description="one server of the policy (an API user sees its own only; another is 403)",
        ),
    ] = None
    api_user: Annotated[str | None, Field(max_length=200, description="one API user")] = None
    tz: Annotated[
        str | None,
        Field(
            max_length=64,
            description="IANA time zone the dates are days of and times are shown in (default UTC)",
            examples=["Asia/Tokyo"],
        ),
    ] = None


class Range(Scope):
    start: Annotated[str, _date("first day, YYYY-MM-DD (inclusive), 1970-01-01 to 2261-12-31")]
    end: Annotated[str, _date("last day, YYYY-MM-DD (inclusive), not before start")]


ADDRESS = Field(
    max_length=320,
    description="case-insensitive partial match on the recipient, taken literally",
)
PAGE = Field(ge=1, le=MAX_PAGE, description="page of 10 results, from 1 (default 1)")


class DeliveryExport(Range):
    status: Annotated[
        Literal["queued", "deferred", "succeeded", "failed"] | None,
        Field(description="the delivery's current state"),
    ] = None
    address: Annotated[str | None, ADDRESS] = None


class DeliverySearch(DeliveryExport):
    page: Annotated[int | None, PAGE] = None


class ErrorExport(Range):
    error: Annotated[
        ErrorStatus | None,
        Field(description="error status: 1-10 or 99 (see the README's table)"),
    ] = None
    address: Annotated[str | None, ADDRESS] = None


class ErrorSearch(ErrorExport):
    page: Annotated[int | None, PAGE] = None


class StatsParams(Range):
    interval: Annotated[
        Literal["hour", "day"] | None,
        Field(description="deliveries, errors: buckets (hour: at most 31 days)"),
    ] = None
    domain: Annotated[
        str | None, Field(max_length=255, description="errors: one destination domain")
    ] = None
    limit: Annotated[
        int | None,
        Field(ge=1, le=MAX_TOP, description="domains, mx-hosts, senders, reply-codes: top N"),
    ] = None


class SuppressionSearch(Scope):
    address: Annotated[
        str | None, Field(max_length=320, description="part of the address (lowercase)")
    ] = None
    page: Annotated[int | None, Field(ge=1, le=100_000, description="page of 20, from 1")] = None


class OperationSearch(Scope):
    start: Annotated[str, _date("first day, YYYY-MM-DD")]
    end: Annotated[str, _date("last day, YYYY-MM-DD")]
    actor: Annotated[
        str | None, Field(max_length=320, description="who (an email or API user)")
    ] = None
    action: Annotated[
        str | None, Field(max_length=40, description="one action, e.g. login_failed")
    ] = None
    page: Annotated[int | None, Field(ge=1, le=20, description="page of 50, from 1")] = None


# --- answers (documented; the handlers answer plain JSON) ----------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(
        description="invalid_parameter, unauthorized, forbidden, not_found, "
        "too_many_attempts, unavailable..."
    )
    message: str
    field: str | None = Field(default=None, description="the parameter at fault")


class ErrorAnswer(BaseModel):
    error: ErrorDetail


class ReportRow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    created: str = Field(description="ISO 8601 in tz, milliseconds")
    status: str | int = Field(description="delivery status, or the error status number")
    from_: str = Field(alias="from", description="envelope sender")
    to: str
    messageId: str = Field(description="the mail's Message-ID header")
    returnPath: str = Field(description="the envelope sender used on the wire (VERP)")
    subject: str
    apiData: str = Field(description="X-Api-Data")
    reason: str = Field(description="the reply or the reason of the latest state")
    deliveryId: str
    traceId: str
    id: str = Field(description="Postline's message id (shared by a message's deliveries)")
    eventId: str | None = Field(default=None, description="error rows: the row's id")


class SearchAnswer(BaseModel):
    results: list[ReportRow]
    total: int = Field(description="matches shown, at most 100")
    truncated: bool = Field(description="more than 100 matched")
    page: int
    pages: int


class LiveRow(ReportRow):
    updated: str
    attempt: int
    replyCode: int
    enhancedStatus: str


class LiveAnswer(BaseModel):
    results: list[LiveRow]
    total: int


class ErrorRowDetail(ReportRow):
    source: str = Field(description="smtp_reply, bounce_mail or policy")
    replyCode: int
    enhancedStatus: str
    server: str
    apiUser: str


class HistoryEvent(BaseModel):
    eventId: str
    at: str
    status: str
    attempt: int
    replyCode: int
    enhancedStatus: str
    reason: str
    mxHost: str
    sourceIp: str
    errorStatus: int
    nextAttemptAt: str | None
    traceId: str


class HistoryError(BaseModel):
    eventId: str
    created: str
    status: int
    reason: str
    source: str
    permanent: bool
    replyCode: int
    enhancedStatus: str
    traceId: str


class History(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    deliveryId: str
    id: str
    messageId: str
    headerMessageId: str
    server: str
    apiUser: str
    from_: str = Field(alias="from")
    to: str
    subject: str
    apiData: str
    returnPath: str
    created: str | None
    status: str | None
    traceId: str
    events: list[HistoryEvent]
    errors: list[HistoryError]


class SpanLink(BaseModel):
    trace_id: str
    span_id: str  # "" when only the trace is known (a bounce mail's link to a delivery)
    attributes: dict[str, str]


class SpanEvent(BaseModel):
    name: str  # postline.mx_lookup, postline.connected, postline.reply...
    time: str
    attributes: dict[str, str]


class Span(BaseModel):
    trace_id: str
    service: str
    name: str
    span_id: str
    parent_span_id: str  # "" for the root
    start: str  # ISO 8601 UTC, microseconds
    end: str
    duration_ms: float
    kind: str  # SPAN_KIND_SERVER...
    status: str  # STATUS_CODE_UNSET, STATUS_CODE_OK, STATUS_CODE_ERROR
    status_message: str
    attributes: dict[str, str]
    links: list[SpanLink]
    events: list[SpanEvent]
    linked: bool  # a span of another trace that links to this one (a bounce mail)


class TraceAnswer(BaseModel):
    traceId: str
    spans: list[Span]


class StatsAnswer(BaseModel):
    stat: str
    start: str
    end: str
    tz: str
    key: str = Field(description="the name of each row's key: time, day, domain, mx...")
    columns: list[str]
    rows: list[dict[str, str | int]] = Field(
        description="each row: its key, an optional label, and one number per column"
    )
    interval: str | None = None


class Suppression(BaseModel):
    server: str
    address: str
    reason: str
    created: str | None
    expiresAt: str | None


class SuppressionList(BaseModel):
    results: list[Suppression]
    total: int
    page: int
    pages: int


class NewSuppression(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320, description="the address to block")
    server: str | None = Field(
        default=None,
        max_length=200,
        description="console sessions: the server (API users: their own)",
    )
    reason: str | None = Field(default=None, max_length=500)
    expires_in: str | None = Field(
        default=None, max_length=20, description="a duration like 30d; none: for good"
    )


class Removed(BaseModel):
    removed: bool


class SettingsAnswer(BaseModel):
    retention_days: int
    servers: list[dict[str, Any]] = Field(
        description="each server's running policy (no secret or hash)"
    )


class Operation(BaseModel):
    at: str
    actor: str
    ip: str
    action: str
    target: str
    detail: str


class OperationAnswer(BaseModel):
    results: list[Operation]
    total: int
    truncated: bool
    page: int
    pages: int


class AccountView(BaseModel):
    email: str
    role: str
    language: str
    timezone: str
    totp: bool
    disabled: bool
    inPolicy: bool


class AccountsAnswer(BaseModel):
    results: list[AccountView]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorAnswer, "description": "a parameter is missing or invalid"},
    401: {"model": ErrorAnswer, "description": "no valid credentials or session"},
    403: {"model": ErrorAnswer, "description": "not allowed (address, server, role)"},
    429: {
        "model": ErrorAnswer,
        "description": "too many failed authentications (see Retry-After)",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    503: {"model": ErrorAnswer, "description": "ClickHouse or bounce cannot answer now"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorAnswer, "description": "no such thing"}
}
