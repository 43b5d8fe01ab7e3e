"""Prohibited hours: hold matching deliveries inside time windows of a local timezone.

A window belongs to the day it starts on: ``days: [fri]`` with ``"21:00-08:00"`` holds from
Friday 21:00 to Saturday 08:00. Windows are wall-clock times, so ``21:00`` stays 21:00 local
across a daylight-saving change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import PrivateAttr, model_validator

from postline.common.policy.base import PolicyIssues
from postline.common.policy.fields import TimeWindow, TimeWindowField, TimeZone, Weekday, Weekdays
from postline.common.policy.filters import Filter


class ProhibitedHours(Filter):
    timezone: TimeZone = ZoneInfo("UTC")
    days: Weekdays = frozenset(Weekday)
    windows: tuple[TimeWindowField, ...]

    _weekdays: frozenset[int] = PrivateAttr(default=frozenset())

    @model_validator(mode="after")
    def _check(self) -> ProhibitedHours:
        if not self.windows:
            raise PolicyIssues([(("windows",), "needs at least one window")])
        if not self.days:
            raise PolicyIssues([(("days",), "is empty: the rule would never hold anything")])
        self._weekdays = frozenset(d.number for d in self.days)
        if self._release(datetime(2024, 1, 1, tzinfo=self.timezone)) is None:
            raise PolicyIssues(
                [(("windows",), "the windows cover the whole week: mail would never be delivered")]
            )
        return self

    def release_at(self, at: datetime) -> datetime | None:
        """When a delivery held at ``at`` (aware) may go, in ``at``'s timezone; None if ``at``
        is outside every window. Back-to-back windows are crossed in one answer."""
        if at.tzinfo is None:
            raise ValueError("release_at needs an aware datetime")
        local = at.astimezone(self.timezone)
        end = self._release(local)
        if end is None:
            raise AssertionError("checked at load: the windows leave some time free")
        return None if end == local else end.astimezone(at.tzinfo)

    def holds(self, at: datetime) -> bool:
        return self.release_at(at) is not None

    def _release(self, local: datetime) -> datetime | None:
        # Each step leaves at least one window occurrence behind; a week and a day of them is
        # the most there can be before reaching free time, unless there is none.
        current = local
        for _ in range(8 * len(self.windows) + 2):
            end = self._window_end(current)
            if end is None:
                return current
            current = end
        return None

    def _window_end(self, local: datetime) -> datetime | None:
        """The latest end of the windows containing ``local``, or None."""
        latest: datetime | None = None
        at = local.astimezone(UTC)
        for window in self.windows:
            for back in (0, 1):
                day = local.date() - timedelta(days=back)
                if day.weekday() not in self._weekdays:
                    continue
                start, end = _window_span(day, window, self.timezone)
                if start <= at < end and (latest is None or end > latest):
                    latest = end
        return latest.astimezone(self.timezone) if latest else None


def _window_span(day: date, window: TimeWindow, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The window's start and end on ``day``, in UTC."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    # Adding to an aware datetime is wall-clock arithmetic, which is what a window means.
    start = midnight + timedelta(minutes=window.start)
    end = midnight + timedelta(minutes=window.end + (1440 if window.crosses_midnight else 0))
    return start.astimezone(UTC), end.astimezone(UTC)
