"""The weekly summary's calendar (due times, the week covered, in the summary's time zone)
and its tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

from postline.common.policy.fields import Weekday
from postline.common.policy.model import WeeklySummary
from postline.reports.summary.figures import DomainFigures, WeekFigures
from postline.reports.summary.render import change, summary_mail, text_part
from postline.reports.summary.schedule import Week, latest_due, next_due, week_before

TOKYO = WeeklySummary(
    to=("ops@example.test",), day=Weekday.MON, time=dt_time(9, 0), timezone=ZoneInfo("Asia/Tokyo")
)


def test_the_latest_due_time_is_the_last_monday_0900_in_tokyo() -> None:
    # Wednesday 2026-11-04 03:00 UTC = 12:00 in Tokyo: due Monday 2026-11-02 09:00 JST.
    now = datetime(2026, 11, 4, 3, 0, tzinfo=UTC)
    assert latest_due(TOKYO, now) == datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    assert next_due(TOKYO, now) == datetime(2026, 11, 9, 0, 0, tzinfo=UTC)


def test_on_the_day_before_the_time_it_is_last_week() -> None:
    # Monday 2026-11-09 08:59 JST: this Monday's summary is not due yet.
    now = datetime(2026, 11, 8, 23, 59, tzinfo=UTC)
    assert latest_due(TOKYO, now) == datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    assert latest_due(TOKYO, now + timedelta(minutes=1)) == datetime(2026, 11, 9, tzinfo=UTC)


def test_the_week_covered_is_monday_to_sunday_before_in_its_time_zone() -> None:
    due = datetime(2026, 11, 9, 0, 0, tzinfo=UTC)  # Monday 09:00 JST
    week = week_before(TOKYO, due)
    assert (week.first_day, week.last_day) == (date(2026, 11, 2), date(2026, 11, 8))
    assert week.start == datetime(2026, 11, 1, 15, 0, tzinfo=UTC)  # 2026-11-02 00:00 JST
    assert week.end == datetime(2026, 11, 8, 15, 0, tzinfo=UTC)
    previous = week_before(TOKYO, due, 2)
    assert (previous.first_day, previous.end) == (date(2026, 10, 26), week.start)


def test_a_week_across_a_daylight_saving_change_is_seven_local_days() -> None:
    berlin = WeeklySummary(
        to=("ops@example.test",),
        day=Weekday.MON,
        time=dt_time(9),
        timezone=ZoneInfo("Europe/Berlin"),
    )
    due = latest_due(berlin, datetime(2026, 11, 2, 12, tzinfo=UTC))  # CEST ended 2026-10-25
    assert due == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    week = week_before(berlin, due, 2)  # 2026-10-19 .. 2026-10-25, 169 hours long
    assert week.end - week.start == timedelta(days=7, hours=1)


def test_change_against_the_previous_week() -> None:
    assert change(150, 100) == "+50.0%"
    assert change(50, 100) == "-50.0%"
    assert change(3, 0) == "new"
    assert change(0, 0) == "–"


def _figures(
    first: date, deliveries: tuple[int, int, int, int], **domains: DomainFigures
) -> WeekFigures:
    start = datetime.combine(first, dt_time(), UTC)
    week = Week(start, start + timedelta(days=7), first, first + timedelta(days=6))
    return WeekFigures(
        week,
        dict(zip(("queued", "deferred", "succeeded", "failed"), deliveries, strict=True)),
        {2: 4, 5: 1},
        dict(domains),
    )


def test_the_text_part_has_every_table_with_both_weeks() -> None:
    this = _figures(
        date(2026, 11, 2),
        (120, 7, 100, 20),
        **{
            "a.test": DomainFigures("a.test", 100, 5, 90, 10),
            "b.test": DomainFigures("b.test", 20, 2, 10, 10),
            "tiny.test": DomainFigures("tiny.test", 3, 0, 0, 3),  # too few to rank
        },
    )
    previous = _figures(date(2026, 10, 26), (100, 0, 95, 5), **{
        "a.test": DomainFigures("a.test", 80, 0, 78, 2),
    })  # fmt: skip
    text = text_part("default", "Asia/Tokyo", this, previous)
    lines = text.splitlines()
    assert lines[0] == "Postline weekly summary: default, 2026-11-02 to 2026-11-08"
    assert any(line.split() == ["accepted", "120", "100", "+20.0%"] for line in lines)
    assert any(line.split() == ["failed", "20", "5", "+300.0%"] for line in lines)
    assert any(line.split() == ["2", "Unknown", "user", "4", "4", "+0.0%"] for line in lines)
    assert any(line.split() == ["a.test", "100", "90", "10", "80"] for line in lines)
    worst = lines[lines.index(next(x for x in lines if x.startswith("Worst"))) + 2 :]
    assert worst[0].split() == ["b.test", "50.0%", "10", "20", "–"]
    assert worst[1].split() == ["a.test", "10.0%", "10", "100", "2.5%"]
    assert "tiny.test" not in "\n".join(worst[:3])

    mail = summary_mail(
        server="default",
        timezone="Asia/Tokyo",
        sender="mailer-daemon@bounce.example.test",
        recipients=["ops@example.test"],
        message_id="<s@x.test>",
        this=this,
        previous=previous,
        now=datetime(2026, 11, 9, tzinfo=UTC),
    )
    assert b"\r\nContent-Type: text/html" in mail and b"multipart/alternative" in mail
    assert b"Auto-Submitted: auto-generated\r\n" in mail
