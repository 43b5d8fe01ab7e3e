"""When a weekly summary is due, and which week it covers.

A summary due on ``day`` at ``time`` in ``timezone`` covers the seven whole days (midnight to
midnight, in that time zone) before the day it is sent: sent on Monday at 09:00, it covers
Monday to Sunday of the week before; it is compared with the seven days before those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from postline.common.policy.model import WeeklySummary

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Week:
    start: datetime  # the first instant (UTC)
    end: datetime  # the first instant after it (UTC)
    first_day: date  # local dates, for the reader
    last_day: date


def latest_due(summary: WeeklySummary, now: datetime) -> datetime:
    """The latest scheduled moment at or before ``now`` (UTC)."""
    tz = summary.timezone
    local = now.astimezone(tz)
    day = local.date() - timedelta(days=(local.weekday() - summary.day.number) % 7)
    due = datetime.combine(day, summary.time, tz)
    if due > now:
        due = datetime.combine(day - WEEK, summary.time, tz)
    return due.astimezone(UTC)


def next_due(summary: WeeklySummary, now: datetime) -> datetime:
    """The first scheduled moment after ``now`` (UTC)."""
    day = latest_due(summary, now).astimezone(summary.timezone).date() + WEEK
    return datetime.combine(day, summary.time, summary.timezone).astimezone(UTC)


def week_before(summary: WeeklySummary, due: datetime, weeks_back: int = 1) -> Week:
    """The week a summary sent at ``due`` covers (``weeks_back=2``: the one before it)."""
    tz = summary.timezone
    sent_on = due.astimezone(tz).date()
    first = sent_on - weeks_back * WEEK
    last = first + WEEK
    return Week(
        datetime.combine(first, time(), tz).astimezone(UTC),
        datetime.combine(last, time(), tz).astimezone(UTC),
        first,
        last - timedelta(days=1),
    )
