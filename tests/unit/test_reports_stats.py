"""Statistics parameters and how rollup rows become answers (every bucket, zeros included)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from postline.reports.stats import STATISTICS, SearchError, parse_stats_query

RANGE = {"start": "2026-11-01", "end": "2026-11-02"}


def test_every_statistic_needs_dates() -> None:
    for name, statistic in STATISTICS.items():
        with pytest.raises(SearchError) as missing:
            parse_stats_query(statistic, {"start": "2026-11-01"})
        assert missing.value.field == "end", name


def test_interval_domain_and_limit_where_they_apply() -> None:
    deliveries = parse_stats_query(STATISTICS["deliveries"], RANGE)
    assert deliveries.interval == "day"  # the default of the delivery graph
    assert parse_stats_query(STATISTICS["deliveries"], {**RANGE, "interval": "hour"}).interval
    with pytest.raises(SearchError) as bad:
        parse_stats_query(STATISTICS["deliveries"], {**RANGE, "interval": "week"})
    assert bad.value.field == "interval"
    errors = parse_stats_query(STATISTICS["errors"], {**RANGE, "domain": " Gmail.COM "})
    assert errors.interval is None and errors.domain == "gmail.com"
    assert parse_stats_query(STATISTICS["domains"], RANGE).limit == 10
    assert parse_stats_query(STATISTICS["domains"], {**RANGE, "limit": "1000"}).limit == 1000
    for limit in ("0", "1001", "ten"):
        with pytest.raises(SearchError):
            parse_stats_query(STATISTICS["senders"], {**RANGE, "limit": limit})
    # parameters a statistic does not take are ignored, not misapplied
    daily = parse_stats_query(STATISTICS["daily"], {**RANGE, "domain": "x", "interval": "x"})
    assert daily.domain is None and daily.interval is None


def shape(name: str, rows: list[tuple[object, ...]], **params: str) -> dict[str, object]:
    statistic = STATISTICS[name]
    q = parse_stats_query(statistic, {**RANGE, **params})
    return statistic.shape(q, rows).as_json(q.dates)


def test_hourly_graph_has_every_hour_of_the_local_days() -> None:
    answer = shape("deliveries", [(datetime(2026, 11, 1, 0), 5, 1, 3, 1)], interval="hour")
    rows = answer["rows"]
    assert isinstance(rows, list) and len(rows) == 48
    assert rows[0] == {
        "time": "2026-11-01T00:00:00Z", "queued": 5, "deferred": 1, "succeeded": 3, "failed": 1,
    }  # fmt: skip
    assert rows[1]["queued"] == 0
    tokyo = shape("deliveries", [(datetime(2026, 10, 31, 15), 2, 0, 0, 0)], interval="hour",
                  tz="Asia/Tokyo")  # fmt: skip
    assert tokyo["rows"][0] == {  # type: ignore[index]
        "time": "2026-11-01T00:00:00+09:00", "queued": 2, "deferred": 0, "succeeded": 0,
        "failed": 0,
    }  # fmt: skip
    assert tokyo["tz"] == "Asia/Tokyo"


def test_error_totals_name_every_status() -> None:
    answer = shape("errors", [(2, 7), (99, 1)])
    rows = answer["rows"]
    assert isinstance(rows, list) and len(rows) == 11
    assert rows[1] == {"status": 2, "label": "Unknown user", "errors": 7}
    assert rows[-1] == {"status": 99, "label": "Other", "errors": 1}
    series = shape("errors", [(date(2026, 11, 2), 5, 3)], interval="day")
    assert series["columns"] == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "99"]
    assert series["rows"][1]["5"] == 3 and series["rows"][0]["5"] == 0  # type: ignore[index]


def test_calendar_summaries_fill_their_keys() -> None:
    weekdays = shape("days-of-week", [(7, 1, 0, 1, 0, 0)])["rows"]
    assert isinstance(weekdays, list) and [r["label"] for r in weekdays][:2] == ["Mon", "Tue"]
    assert weekdays[6] == {
        "weekday": 7, "label": "Sun", "queued": 1, "deferred": 0, "succeeded": 1, "failed": 0,
        "errors": 0,
    }  # fmt: skip
    assert len(shape("hours", [])["rows"]) == 24  # type: ignore[arg-type]
    assert len(shape("days-of-month", [])["rows"]) == 31  # type: ignore[arg-type]
    months = shape("monthly", [], start="2026-10-15", end="2027-01-02")["rows"]
    assert [r["month"] for r in months] == ["2026-10", "2026-11", "2026-12", "2027-01"]  # type: ignore[union-attr]


def test_top_lists_keep_the_order_of_the_query() -> None:
    answer = shape("domains", [("gmail.com", 9, 1, 8, 0), ("b.test", 2, 0, 1, 1)])
    assert [r["domain"] for r in answer["rows"]] == ["gmail.com", "b.test"]  # type: ignore[union-attr]
    replies = shape("reply-codes", [(250, "2.0.0", 9), (421, "", 2)])
    assert replies["rows"] == [
        {"reply": "250 2.0.0", "replies": 9},
        {"reply": "421", "replies": 2},
    ]


def test_ranges_are_bounded_so_every_bucket_can_be_answered() -> None:
    deliveries = STATISTICS["deliveries"]
    hourly = {"start": "2026-01-01", "end": "2026-03-01", "interval": "hour"}
    with pytest.raises(SearchError) as too_many_hours:
        parse_stats_query(deliveries, hourly)
    assert too_many_hours.value.field == "interval"
    assert parse_stats_query(deliveries, {**hourly, "interval": "day"}).interval == "day"
    with pytest.raises(SearchError) as too_long:
        parse_stats_query(STATISTICS["daily"], {"start": "1970-01-01", "end": "2261-12-31"})
    assert too_long.value.field == "end"
    with pytest.raises(SearchError) as limit:
        parse_stats_query(
            STATISTICS["domains"], {"start": "2026-01-01", "end": "2026-01-01", "limit": "١٠"}
        )
    assert limit.value.field == "limit"
