"""Query parameters every reports endpoint shares: the date range, the time zone, the scope.

Dates are whole days, ``start`` and ``end`` inclusive, both mandatory, as ``YYYY-MM-DD``. They
are days of ``tz`` (an IANA name, default UTC): console accounts have a time zone, and the
hosted service's users read their reports in theirs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The days a search may name: ClickHouse's DateTime64 holds 1900-2299, and a range's end is
# the first instant of the following day in the caller's zone, so both ends stay well inside.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2261, 12, 31)
MAX_TZ_LENGTH = 64  # the longest IANA name is about 30 characters
_TZ_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


class SearchError(ValueError):
    """A parameter is missing or invalid; ``field`` names it (the API answers 400).

    ``kind`` says what is wrong in a word the console translates (``required``, ``date``,
    ``date_range``, ``order``, ``choice``, ``number``, ``tz``, ``too_long``, ``range_size``,
    ``unknown``, ``invalid``); ``message`` is the English sentence the API answers."""

    def __init__(self, field: str, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.kind = kind


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


def _shown(value: str, limit: int = 40) -> str:
    """A bad value quoted in an error message, cut short (it may be a megabyte long)."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def parse_date(field: str, value: str | None) -> date:
    if not value:
        raise SearchError(field, f"{field} is required (YYYY-MM-DD)", "required")
    parsed = None
    if len(value) == 10 and value.isascii():
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            pass
    if parsed is None:
        raise SearchError(
            field, f"{field} must be a date as YYYY-MM-DD, got {_shown(value)}", "date"
        )
    if not FIRST_DAY <= parsed <= LAST_DAY:
        raise SearchError(
            field,
            f"{field} must be a day from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}",
            "date_range",
        )
    return parsed


def parse_tz(value: str | None) -> tzinfo:
    if not value or value == "UTC":
        return UTC
    problem = SearchError(
        "tz", f"tz must be an IANA time zone like Asia/Tokyo, got {_shown(value)}", "tz"
    )
    if len(value) > MAX_TZ_LENGTH or not _TZ_NAME.match(value):
        raise problem
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise problem from None


def parse_range(params: Mapping[str, str], max_days: int | None = None) -> DateRange:
    start = parse_date("start", params.get("start"))
    end = parse_date("end", params.get("end"))
    if end < start:
        raise SearchError("end", "end must not be before start", "order")
    if max_days is not None and (end - start).days + 1 > max_days:
        raise SearchError("end", f"the range may cover at most {max_days} days", "range_size")
    return DateRange(start, end, parse_tz(params.get("tz")))


def parse_whole(text: str, field: str, minimum: int, maximum: int) -> int:
    """A whole number in ``minimum..maximum`` written in ASCII digits (``"²".isdigit()`` is
    true, and ``int`` of a thousand digits is slow: both are refused before converting)."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(maximum))) or not (
        minimum <= int(text) <= maximum
    ):
        raise SearchError(
            field, f"{field} must be a whole number from {minimum} to {maximum}", "number"
        )
    return int(text)


def parse_positive(params: Mapping[str, str], field: str, default: int, maximum: int) -> int:
    return parse_whole(params.get(field) or str(default), field, 1, maximum)


def parse_text(params: Mapping[str, str], field: str, maximum: int = 320) -> str | None:
    """A free-text parameter (an address, a name), at most ``maximum`` characters."""
    value = params.get(field) or None
    if value is not None and len(value) > maximum:
        raise SearchError(field, f"{field} may be at most {maximum} characters", "too_long")
    return value


def parse_choice(
    params: Mapping[str, str], field: str, choices: tuple[str, ...], default: str | None
) -> str | None:
    value = params.get(field) or default
    if value is not None and value not in choices:
        raise SearchError(field, f"{field} must be one of {', '.join(choices)}", "choice")
    return value


def format_instant(value: datetime, tz: tzinfo = UTC) -> str:
    """ISO 8601 with milliseconds: ``2026-11-01T09:30:00.000Z`` in UTC, else with the offset."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if tz is UTC else text
