"""Statistics: the data behind each graph and table of the console, read from the rollups.

Every statistic answers a table: a key per row (a time bucket, a domain, an MX host...) and
counts in named columns. The rollups (migration 0003) hold hourly UTC buckets; days, months,
weekdays and hours of the day are their sums in the caller's time zone, exact for every zone
whose offset is a whole number of hours (in others a bucket is counted in the local hour or
day in which its UTC hour starts).

Delivery counts are events: ``queued`` (accepted), ``deferred`` (each deferral),
``succeeded``, ``failed``; ``errors`` counts error-log rows (including bounces that arrived
after a success).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from postline.reports.params import (
    DateRange,
    SearchError,
    parse_choice,
    parse_positive,
    parse_range,
    parse_text,
)

STATUS_COLUMNS = ("queued", "deferred", "succeeded", "failed")
ERROR_STATUS_NAMES = {
    1: "Unknown host",
    2: "Unknown user",
    3: "Resend timeout",
    4: "Receipt rejection",
    5: "Over capacity",
    6: "Forwarding error",
    7: "Receiving server error",
    8: "Oversize",
    9: "Address format error",
    10: "Blocked address",
    99: "Other",
}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
INTERVALS = ("hour", "day")
DEFAULT_TOP = 10
MAX_TOP = 1000
# Every bucket of the range is answered (zeros included): ten years of days, a month of hours.
MAX_DAYS = 3660
MAX_HOURLY_DAYS = 31

_HOUR = "DateTime('UTC')"


@dataclass(frozen=True)
class StatsQuery:
    dates: DateRange
    server: str | None = None
    api_user: str | None = None
    interval: str | None = None
    domain: str | None = None
    limit: int = DEFAULT_TOP


@dataclass(frozen=True)
class StatRow:
    key: str | int
    values: tuple[int, ...]
    label: str = ""


@dataclass(frozen=True)
class Stats:
    name: str
    key: str
    columns: tuple[str, ...]
    rows: list[StatRow]
    interval: str | None = None

    def as_json(self, dates: DateRange) -> dict[str, Any]:
        rows = []
        for row in self.rows:
            item: dict[str, Any] = {self.key: row.key}
            if row.label:
                item["label"] = row.label
            item.update(zip(self.columns, row.values, strict=True))
            rows.append(item)
        answer: dict[str, Any] = {
            "stat": self.name,
            "start": dates.start.isoformat(),
            "end": dates.end.isoformat(),
            "tz": dates.tz_name,
            "key": self.key,
            "columns": list(self.columns),
            "rows": rows,
        }
        if self.interval:
            answer["interval"] = self.interval
        return answer


@dataclass(frozen=True)
class Statistic:
    """How one statistic is asked for and answered."""

    sql: Callable[[StatsQuery], tuple[str, dict[str, Any]]]
    shape: Callable[[StatsQuery, list[tuple[Any, ...]]], Stats]
    over_time: bool = False  # takes ``interval`` (hour or day)
    default_interval: str | None = None
    domain: bool = False  # takes ``domain``
    top: bool = False  # takes ``limit``


def parse_stats_query(statistic: Statistic, params: Mapping[str, str]) -> StatsQuery:
    dates = parse_range(params, MAX_DAYS)
    interval = None
    if statistic.over_time:
        interval = parse_choice(params, "interval", INTERVALS, statistic.default_interval)
        days = (dates.end - dates.start).days + 1
        if interval == "hour" and days > MAX_HOURLY_DAYS:
            raise SearchError(
                "interval",
                f"interval=hour covers at most {MAX_HOURLY_DAYS} days; use interval=day",
                "range_size",
            )
    domain = None
    if statistic.domain:
        domain = (parse_text(params, "domain", 255) or "").strip().lower() or None
    return StatsQuery(
        dates=dates,
        server=parse_text(params, "server", 200),
        api_user=parse_text(params, "api_user", 200),
        interval=interval,
        domain=domain,
        limit=parse_positive(params, "limit", DEFAULT_TOP, MAX_TOP) if statistic.top else 0,
    )


# --- SQL pieces ---------------------------------------------------------------------------


def _where(q: StatsQuery, params: dict[str, Any]) -> str:
    first = q.dates.first_instant
    params["start"] = first.replace(minute=0, second=0, microsecond=0)
    params["end"] = q.dates.end_instant
    clauses = [f"hour >= {{start:{_HOUR}}}", f"hour < {{end:{_HOUR}}}"]
    if q.server:
        clauses.append("server = {server:String}")
        params["server"] = q.server
    if q.api_user:
        clauses.append("api_user = {api_user:String}")
        params["api_user"] = q.api_user
    if q.domain:
        clauses.append("recipient_domain = {domain:String}")
        params["domain"] = q.domain
    return " AND ".join(clauses)


def _bucket(interval: str | None) -> str:
    return "hour" if interval == "hour" else "toDate(hour, {tz:String})"


def _sums(columns: tuple[str, ...]) -> str:
    return ", ".join(f"sum({c})" for c in columns)


def _params(q: StatsQuery) -> dict[str, Any]:
    return {"tz": q.dates.tz_name}


def _deliveries_sql(q: StatsQuery) -> tuple[str, dict[str, Any]]:
    params = _params(q)
    sql = (
        f"SELECT {_bucket(q.interval)} AS k, {_sums(STATUS_COLUMNS)} FROM postline.stats_hourly "
        f"WHERE {_where(q, params)} GROUP BY k ORDER BY k"
    )
    return sql, params


SUMMARY_COLUMNS = (*STATUS_COLUMNS, "errors")


def _summary_sql(key: str) -> Callable[[StatsQuery], tuple[str, dict[str, Any]]]:
    """Deliveries and errors together, summed by ``key`` (an expression of ``hour``)."""

    def sql(q: StatsQuery) -> tuple[str, dict[str, Any]]:
        params = _params(q)
        where = _where(q, params)
        return (
            f"SELECT {key} AS k, {_sums(SUMMARY_COLUMNS)} FROM ("
            f"SELECT hour, {', '.join(STATUS_COLUMNS)}, 0 AS errors FROM postline.stats_hourly "
            f"WHERE {where} UNION ALL "
            "SELECT hour, 0 AS queued, 0 AS deferred, 0 AS succeeded, 0 AS failed, errors "
            f"FROM postline.stats_errors_hourly WHERE {where}) GROUP BY k ORDER BY k",
            params,
        )

    return sql


def _top_sql(
    table: str, key: str, columns: tuple[str, ...], order: str
) -> Callable[[StatsQuery], tuple[str, dict[str, Any]]]:
    def sql(q: StatsQuery) -> tuple[str, dict[str, Any]]:
        params = _params(q)
        return (
            f"SELECT {key} AS k, {_sums(columns)} FROM postline.{table} "
            f"WHERE {_where(q, params)} GROUP BY k ORDER BY {order}, k LIMIT {q.limit}",
            params,
        )

    return sql


def _errors_sql(q: StatsQuery) -> tuple[str, dict[str, Any]]:
    params = _params(q)
    where = _where(q, params)
    if q.interval is None:
        sql = (
            "SELECT status AS k, sum(errors) FROM postline.stats_errors_hourly "
            f"WHERE {where} GROUP BY k ORDER BY k"
        )
    else:
        sql = (
            f"SELECT {_bucket(q.interval)} AS k, status, sum(errors) "
            f"FROM postline.stats_errors_hourly WHERE {where} GROUP BY k, status ORDER BY k"
        )
    return sql, params


# --- shaping: keys, gaps filled with zeros --------------------------------------------------


def _hours(dates: DateRange) -> Iterator[datetime]:
    at = dates.first_instant.replace(minute=0, second=0, microsecond=0)
    while at < dates.end_instant:
        yield at
        at += timedelta(hours=1)


def _days(dates: DateRange) -> Iterator[date]:
    day = dates.start
    while day <= dates.end:
        yield day
        day += timedelta(days=1)


def _months(dates: DateRange) -> Iterator[date]:
    month = dates.start.replace(day=1)
    while month <= dates.end:
        yield month
        month = (month + timedelta(days=32)).replace(day=1)


def _hour_key(value: datetime, dates: DateRange) -> str:
    local = value.replace(tzinfo=UTC).astimezone(dates.tz).isoformat(timespec="seconds")
    return local.replace("+00:00", "Z")


def _time_keys(q: StatsQuery) -> list[tuple[Any, str]]:
    """(the value ClickHouse answers, the key shown) for every bucket of the range."""
    if q.interval == "hour":
        naive = [h.replace(tzinfo=None) for h in _hours(q.dates)]
        return [(h, _hour_key(h, q.dates)) for h in naive]
    return [(d, d.isoformat()) for d in _days(q.dates)]


def _filled(
    keys: Sequence[tuple[Any, str | int, str]], found: dict[Any, tuple[int, ...]], width: int
) -> list[StatRow]:
    zeros = (0,) * width
    return [StatRow(shown, found.get(value, zeros), label) for value, shown, label in keys]


def _counts(rows: list[tuple[Any, ...]]) -> dict[Any, tuple[int, ...]]:
    return {row[0]: tuple(int(v) for v in row[1:]) for row in rows}


def _shape_deliveries(q: StatsQuery, rows: list[tuple[Any, ...]]) -> Stats:
    keys = [(value, shown, "") for value, shown in _time_keys(q)]
    filled = _filled(keys, _counts(rows), len(STATUS_COLUMNS))
    return Stats("deliveries", "time", STATUS_COLUMNS, filled, q.interval)


def _shape_summary(
    name: str, key: str, keys: Callable[[StatsQuery], list[tuple[Any, str | int, str]]]
) -> Callable[[StatsQuery, list[tuple[Any, ...]]], Stats]:
    def shape(q: StatsQuery, rows: list[tuple[Any, ...]]) -> Stats:
        return Stats(name, key, SUMMARY_COLUMNS, _filled(keys(q), _counts(rows), 5))

    return shape


def _shape_top(
    name: str, key: str, columns: tuple[str, ...]
) -> Callable[[StatsQuery, list[tuple[Any, ...]]], Stats]:
    def shape(q: StatsQuery, rows: list[tuple[Any, ...]]) -> Stats:
        return Stats(
            name, key, columns, [StatRow(str(r[0]), tuple(int(v) for v in r[1:])) for r in rows]
        )

    return shape


def _shape_errors(q: StatsQuery, rows: list[tuple[Any, ...]]) -> Stats:
    statuses = tuple(ERROR_STATUS_NAMES)
    if q.interval is None:
        found = _counts(rows)
        return Stats(
            "errors",
            "status",
            ("errors",),
            [StatRow(s, found.get(s, (0,)), ERROR_STATUS_NAMES[s]) for s in statuses],
        )
    by_bucket: dict[Any, list[int]] = {}
    for bucket, status, count in rows:
        if status in ERROR_STATUS_NAMES:
            by_bucket.setdefault(bucket, [0] * len(statuses))[statuses.index(status)] += count
    keys = [(value, shown, "") for value, shown in _time_keys(q)]
    found = {k: tuple(v) for k, v in by_bucket.items()}
    columns = tuple(str(s) for s in statuses)
    return Stats("errors", "time", columns, _filled(keys, found, len(statuses)), q.interval)


def _reply_key(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(f"{code} {enhanced}".strip(), count) for code, enhanced, count in rows]


def _shape_replies(q: StatsQuery, rows: list[tuple[Any, ...]]) -> Stats:
    return Stats(
        "reply-codes", "reply", ("replies",), [StatRow(k, (int(c),)) for k, c in _reply_key(rows)]
    )


def _replies_sql(q: StatsQuery) -> tuple[str, dict[str, Any]]:
    params = _params(q)
    return (
        "SELECT reply_code, enhanced_status, sum(replies) AS n FROM postline.stats_replies_hourly "
        f"WHERE {_where(q, params)} GROUP BY reply_code, enhanced_status "
        f"ORDER BY n DESC, reply_code, enhanced_status LIMIT {q.limit}",
        params,
    )


def _day_keys(q: StatsQuery) -> list[tuple[Any, str | int, str]]:
    return [(d, d.isoformat(), "") for d in _days(q.dates)]


def _month_keys(q: StatsQuery) -> list[tuple[Any, str | int, str]]:
    return [(m, m.isoformat()[:7], "") for m in _months(q.dates)]


def _numbered(
    first: int, last: int, labels: tuple[str, ...] = ()
) -> Callable[[StatsQuery], list[tuple[Any, str | int, str]]]:
    def keys(q: StatsQuery) -> list[tuple[Any, str | int, str]]:
        return [(n, n, labels[n - first] if labels else "") for n in range(first, last + 1)]

    return keys


_TOTAL = "(" + " + ".join(f"sum({c})" for c in STATUS_COLUMNS) + ")"

STATISTICS: dict[str, Statistic] = {
    "deliveries": Statistic(
        _deliveries_sql, _shape_deliveries, over_time=True, default_interval="day"
    ),
    "domains": Statistic(
        _top_sql(
            "stats_domains_hourly",
            "recipient_domain",
            STATUS_COLUMNS,
            f"sum(queued) DESC, {_TOTAL} DESC",
        ),
        _shape_top("domains", "domain", STATUS_COLUMNS),
        top=True,
    ),
    "errors": Statistic(_errors_sql, _shape_errors, over_time=True, domain=True),
    "daily": Statistic(
        _summary_sql("toDate(hour, {tz:String})"), _shape_summary("daily", "day", _day_keys)
    ),
    "monthly": Statistic(
        _summary_sql("toStartOfMonth(hour, {tz:String})"),
        _shape_summary("monthly", "month", _month_keys),
    ),
    "days-of-month": Statistic(
        _summary_sql("toDayOfMonth(hour, {tz:String})"),
        _shape_summary("days-of-month", "day", _numbered(1, 31)),
    ),
    "days-of-week": Statistic(
        _summary_sql("toDayOfWeek(hour, 0, {tz:String})"),
        _shape_summary("days-of-week", "weekday", _numbered(1, 7, WEEKDAYS)),
    ),
    "hours": Statistic(
        _summary_sql("toHour(hour, {tz:String})"),
        _shape_summary("hours", "hour", _numbered(0, 23)),
    ),
    "mx-hosts": Statistic(
        _top_sql(
            "stats_mx_hourly",
            "mx_host",
            ("deferred", "succeeded", "failed"),
            "(sum(deferred) + sum(succeeded) + sum(failed)) DESC",
        ),
        _shape_top("mx-hosts", "mx", ("deferred", "succeeded", "failed")),
        top=True,
    ),
    "senders": Statistic(
        _top_sql(
            "stats_senders_hourly",
            "envelope_from",
            STATUS_COLUMNS,
            f"sum(queued) DESC, {_TOTAL} DESC",
        ),
        _shape_top("senders", "sender", STATUS_COLUMNS),
        top=True,
    ),
    "reply-codes": Statistic(_replies_sql, _shape_replies, top=True),
}


def statistic(name: str) -> Statistic:
    """The statistic called ``name``; KeyError if there is none."""
    return STATISTICS[name]


__all__ = [
    "ERROR_STATUS_NAMES",
    "STATISTICS",
    "SearchError",
    "StatRow",
    "Stats",
    "StatsQuery",
    "parse_stats_query",
    "statistic",
]
