"""Query parameters every reports endpoint shares: the date range, the time zone, the scope.

Dates are whole days, ``start`` and ``end`` inclusive, both mandatory, as ``YYYY-MM-DD``. They
are days of ``tz`` (an IANA name, default UTC): console accounts have a time zone, and the
hosted service's users read their reports in theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SearchError(ValueError):
    """A parameter is missing or invalid; ``field`` names it (the API answers 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date
    tz: tzinfo = UTC

    @property
    def tz_name(self) -> str:
        return str(self.tz)

    @property
    def first_instant(self) -> datetime:
        """The first moment of ``start`` in ``tz``, in UTC."""
        return datetime.combine(self.start, time(), self.tz).astimezone(UTC)

    @property
    def end_instant(self) -> datetime:
        """The first moment after ``end`` in ``tz``, in UTC (exclusive bound)."""
        return datetime.combine(self.end + timedelta(days=1), time(), self.tz).astimezone(UTC)


def parse_date(field: str, value: str | None) -> date:
    if not value:
        raise SearchError(field, f"{field} is required (YYYY-MM-DD)")
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise SearchError(field, f"{field} must be a date as YYYY-MM-DD, got {value!r}")


def parse_tz(value: str | None) -> tzinfo:
    if not value or value == "UTC":
        return UTC
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SearchError(
            "tz", f"tz must be an IANA time zone like Asia/Tokyo, got {value!r}"
        ) from None


def parse_range(params: Mapping[str, str]) -> DateRange:
    start = parse_date("start", params.get("start"))
    end = parse_date("end", params.get("end"))
    if end < start:
        raise SearchError("end", "end must not be before start")
    return DateRange(start, end, parse_tz(params.get("tz")))


def parse_positive(params: Mapping[str, str], field: str, default: int, maximum: int) -> int:
    text = params.get(field) or str(default)
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise SearchError(field, f"{field} must be a whole number from 1 to {maximum}")
    return int(text)


def parse_choice(
    params: Mapping[str, str], field: str, choices: tuple[str, ...], default: str | None
) -> str | None:
    value = params.get(field) or default
    if value is not None and value not in choices:
        raise SearchError(field, f"{field} must be one of {', '.join(choices)}")
    return value


def format_instant(value: datetime, tz: tzinfo = UTC) -> str:
    """ISO 8601 with milliseconds: ``2026-11-01T09:30:00.000Z`` in UTC, else with the offset."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if tz is UTC else text
