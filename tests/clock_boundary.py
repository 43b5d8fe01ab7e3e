"""A pytest plugin for ``scripts/clock_check.sh``: each test starts a moment before a boundary.

Under libfaketime (``LD_PRELOAD`` with ``FAKETIME`` an offset such as ``+0`` and
``FAKETIME_NO_CACHE=1``, so a changed ``FAKETIME`` is read at once) and with
``CLOCK_BOUNDARY=<kind>:<time zone>``, the clock of the test process (and of every process it
starts from then on) is moved forward before each test, to ``CLOCK_LEAD`` seconds (1 unless
told) before the next boundary:

    day       midnight             week   Monday 00:00
    month     the first, 00:00     year   1 January, 00:00
    mon0900   Monday 09:00         dst    the next change of the zone's offset

in the zone (``day:UTC``, ``mon0900:Asia/Tokyo``, ``dst:America/New_York``), so a test that
reads the date, the week or the hour twice sees it change between the two. The clock only
moves forward (monotonic clocks move with it, and waits must not stall), so a test that uses a
fixture made once for its module or class jumps only when it is its module's first (that
fixture's data would age by a day or a week per test; ``CLOCK_EVERY_TEST=1`` jumps anyway).
ClickHouse (chdb) does not see libfaketime and keeps the real clock, for a query's now() and
for TTLs: the jumps add up over a test file (``scripts/clock_check.sh`` runs each file in a
process of its own), and a failure where the two clocks disagree is the tool's, not the test's.

Load with ``-p tests.clock_boundary``; without ``CLOCK_BOUNDARY`` it does nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest


def _next_local(now: datetime, zone: ZoneInfo, kind: str) -> datetime:
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    if kind == "day":
        candidate = midnight
        step = 1
    elif kind == "week":
        candidate = midnight - timedelta(days=local.weekday())
        step = 7
    elif kind == "mon0900":
        candidate = midnight - timedelta(days=local.weekday()) + timedelta(hours=9)
        step = 7
    else:
        raise pytest.UsageError(f"CLOCK_BOUNDARY: unknown kind {kind!r}")
    while candidate.astimezone(UTC) <= now:
        nxt = candidate.replace(tzinfo=None) + timedelta(days=step)
        candidate = nxt.replace(tzinfo=zone)
    return candidate.astimezone(UTC)


def _next_month_or_year(now: datetime, zone: ZoneInfo, yearly: bool) -> datetime:
    local = now.astimezone(zone)
    year, month = local.year, local.month
    while True:
        if yearly:
            year, month = year + 1, 1
        else:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        candidate = datetime(year, month, 1, tzinfo=zone).astimezone(UTC)
        if candidate > now:
            return candidate


def _next_offset_change(now: datetime, zone: ZoneInfo) -> datetime:
    """The first instant after ``now`` where the zone's UTC offset changes (to the second)."""
    before = now.astimezone(zone).utcoffset()
    hour = now.replace(minute=0, second=0, microsecond=0)
    for _ in range(24 * 400):
        hour += timedelta(hours=1)
        if hour.astimezone(zone).utcoffset() != before:
            low, high = hour - timedelta(hours=1), hour
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                if mid.astimezone(zone).utcoffset() == before:
                    low = mid
                else:
                    high = mid
            return high.replace(microsecond=0)
    raise pytest.UsageError(f"CLOCK_BOUNDARY: {zone} has no offset change within a year")


def next_boundary(now: datetime, spec: str) -> datetime:
    kind, _, zone_name = spec.partition(":")
    zone = ZoneInfo(zone_name or "UTC")
    if kind in ("month", "year"):
        return _next_month_or_year(now, zone, yearly=kind == "year")
    if kind == "dst":
        return _next_offset_change(now, zone)
    return _next_local(now, zone, kind)


def boundaries_between(start: datetime, end: datetime, spec: str) -> list[datetime]:
    found = []
    at = next_boundary(start, spec)
    while at <= end:
        found.append(at)
        at = next_boundary(at, spec)
    return found


# The moments a whole run starts at (scripts/clock_check.sh), the latest of each kind before
# now: ClickHouse (chdb) keeps the real clock under libfaketime, so the nearer the moment, the
# fewer tests see the two clocks disagree (a row's TTL, a query's now()).
MOMENT_KINDS = (
    ("week:UTC", 1),  # Sunday to Monday, UTC: a new day and ISO week while running
    ("mon0900:Asia/Tokyo", 1),  # Monday 09:00 in Tokyo (a weekly summary's time)
    ("day:Asia/Tokyo", 1),  # midnight in Tokyo
    ("month:UTC", 1),
    ("year:UTC", 1),
    ("dst:America/New_York", 2),  # the last two changes: one forward, one back
    ("dst:Europe/Berlin", 2),
)


def moments(now: datetime, lead: float = 20) -> list[datetime]:
    """Instants a few seconds before the latest boundaries of each kind, oldest first."""
    found: list[datetime] = []
    for spec, count in MOMENT_KINDS:
        past = boundaries_between(now - timedelta(days=400), now, spec)
        found.extend(at - timedelta(seconds=lead) for at in past[-count:])
    return sorted(set(found))


_last_module: list[object] = [None]


def _shares_module_state(item: pytest.Item) -> bool:
    """Whether the test uses a fixture made once for its module or class (made at a time the
    tests after the first must not see jump away)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        defs and defs[-1].scope in ("module", "class", "package")
        for defs in info.name2fixturedefs.values()
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    spec = os.environ.get("CLOCK_BOUNDARY")
    module = getattr(item, "module", None)
    first_of_module, _last_module[0] = module is not _last_module[0], module
    every = os.environ.get("CLOCK_EVERY_TEST") == "1"
    jumps = every or first_of_module or not _shares_module_state(item)
    if spec and "FAKETIME" in os.environ and jumps:
        lead = float(os.environ.get("CLOCK_LEAD", "1"))
        now = datetime.now(UTC)
        target = next_boundary(now + timedelta(seconds=lead + 1), spec) - timedelta(seconds=lead)
        offset = float(os.environ["FAKETIME"]) + (target - now).total_seconds()
        os.environ["FAKETIME"] = f"{offset:+.3f}"
        time.sleep(0)  # libfaketime reads FAKETIME again on the next clock call
    return (yield)


if __name__ == "__main__":
    print(" ".join(m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in moments(datetime.now(UTC))))
