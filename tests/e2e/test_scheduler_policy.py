"""The scheduler's policy, end to end: every service as a process, mail over SMTP, the
destination simulator counting what arrives.

One stack for the module (three senders, a simulator whose ``slow@`` takes 0.15 s): speed
limits, retries and the resend period, pause/resume from the command line, and prohibited
hours. The prohibited-hours window is set when the stack starts (windows are whole minutes)
and a campaign mail is sent into it right away; the other tests run while it is held, and
the last test checks it waited for the window's end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postline.devstack import Stack
from postline.simulator.client import SimulatorClient
from tests.e2e.conftest import ReportsClient
from tests.e2e.scheduler_support import arrivals, postline, row, scheduler_stack, send
from tests.polling import poll_until

pytestmark = pytest.mark.e2e


def window() -> tuple[str, float]:
    """A prohibited-hours window (UTC) open now and ending on a minute boundary 60-120 s
    from now: the stack takes a while to start, and the window must still be open after."""
    now = datetime.now(UTC)
    start = now.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=2)
    return f"{start:%H:%M}-{end:%H:%M}", end.timestamp()


def server(hours: str) -> dict[str, Any]:
    return {
        "speed": [
            {"match": ["*"], "connections": 20, "interval": "0s", "rate": None},
            # One message per connection: each attempt's own session (test_sender_connection_limits
            # covers reuse with several senders).
            {"match": ["conn2.test"], "connections": 2, "messages_per_connection": 1},
            {"match": ["rate.test"], "rate": "240/min"},
            {"match": ["paused.test"], "connections": 5},
        ],
        "priority": [{"header": "X-Category", "pattern": "^receipt$", "level": "high"}],
        "prohibited_hours": [
            {
                "header": "X-Category",
                "pattern": "^campaign$",
                "timezone": "UTC",
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "windows": [hours],
            }
        ],
        "retry": {
            "interval": "2s",
            "resend_period": "1h",
            "profiles": [
                {"header": "To", "pattern": "^tempfail@", "interval": "2s", "resend_period": "8s"}
            ],
        },
    }


@dataclass
class System:
    stack: Stack
    simulator: SimulatorClient
    reports: ReportsClient
    window_end: float
    held: dict[str, Any]  # the campaign mail's "deferred" row, read while it was held


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("scheduler-policy")
    hours, window_end = window()
    with scheduler_stack(tmp, server(hours), senders=3, simulator_slow_seconds=0.15) as run:
        stack, simulator, reports = run.stack, run.simulator, run.reports
        assert time.time() < window_end - 20, "the stack took too long to start"
        # Into the prohibited hours: a campaign mail (held) and a receipt (goes at once).
        send(stack, ["fan@hours.test"], {"X-Category": "campaign"})
        send(stack, ["buyer@hours.test"], {"X-Category": "receipt"})
        # The delivery log shows a delivery's latest state: read "held" while it is.
        held = poll_until(
            lambda: row(reports, "/api/v1/deliveries", "fan@hours.test", "deferred"), "held"
        )
        yield System(stack, simulator, reports, window_end, held)


def test_a_two_connection_domain_never_sees_a_third(
    system: System,
) -> None:
    stack = system.stack
    simulator = system.simulator
    assert len([n for n in stack.processes if n.startswith("sender")]) == 3
    # slow@ holds each transaction 0.15 s, so attempts overlap whenever the limit allows.
    recipients = [f"slow+{i}@conn2.test" for i in range(200)]
    send(stack, recipients)
    poll_until(lambda: len(arrivals(simulator, "conn2.test")) == 200, "200 arrivals", 120)
    stats = simulator.stats()["domains"]["conn2.test"]
    assert stats["peak_connections"] == 2, stats["peak_connections"]
    assert stats["messages"] == 200


def test_a_rate_per_minute_holds_within_ten_percent(
    system: System,
) -> None:
    stack = system.stack
    simulator = system.simulator
    count = 61
    send(stack, [f"user+{i}@rate.test" for i in range(count)])
    poll_until(lambda: len(arrivals(simulator, "rate.test")) == count, "the arrivals", 90)
    times = arrivals(simulator, "rate.test")
    per_minute = (count - 1) / (times[-1] - times[0]) * 60
    print(f"rate.test at 240/min: {per_minute:.1f}/min over {count} arrivals")
    assert 216 <= per_minute <= 264, per_minute
    # Evenly spaced, not in bursts: never more than the rate's 4 (plus sender jitter) in a
    # second.
    assert max(sum(1 for u in times if t <= u < t + 1) for t in times) <= 6


def test_greylisted_mail_is_retried_and_succeeds(
    system: System,
) -> None:
    stack = system.stack
    simulator = system.simulator
    reports = system.reports
    send(stack, ["greylist@retry.test"])
    poll_until(lambda: simulator.messages(rcpt="greylist@retry.test"), "the retried mail", 60)
    # The first attempt was refused (451 greylisted), the second accepted.
    assert simulator.stats()["domains"]["retry.test"]["rejected"] == 1
    poll_until(
        lambda: row(reports, "/api/v1/deliveries", "greylist@retry.test", "succeeded"),
        "the succeeded row",
        60,
    )


def test_a_permanently_deferring_destination_ends_in_status_3(
    system: System,
) -> None:
    stack = system.stack
    simulator = system.simulator
    reports = system.reports
    started = time.time()
    send(stack, ["tempfail@expire.test"])
    error = poll_until(
        lambda: row(reports, "/api/v1/errors", "tempfail@expire.test", 3),
        "status 3 in the error log",
        90,
    )
    assert "resend period" in error["reason"]
    failed = row(reports, "/api/v1/deliveries", "tempfail@expire.test", "failed")
    assert failed is not None
    # The profile's 8 s resend period, attempts every 2 s.
    assert time.time() - started >= 6
    assert simulator.messages(rcpt="tempfail@expire.test") == []


def test_pause_resume_and_stats_commands(
    system: System,
) -> None:
    stack = system.stack
    simulator = system.simulator
    assert "paused.test: paused" in postline(stack, "scheduler", "pause", "paused.test")
    send(stack, [f"user{i}@paused.test" for i in range(3)])

    def queued() -> bool:
        table = postline(stack, "scheduler", "stats", "--domain", "paused.test")
        return "paused.test (paused)" in table and "  3  " in table

    poll_until(queued, "3 deliveries waiting in stats", 30, every=0.5)
    assert arrivals(simulator, "paused.test") == []
    assert "resumed" in postline(stack, "scheduler", "resume", "paused.test")
    poll_until(lambda: len(arrivals(simulator, "paused.test")) == 3, "the paused mail", 60)


def test_prohibited_hours_hold_matching_mail_until_the_window_ends(
    system: System,
) -> None:
    simulator, held, window_end = system.simulator, system.held, system.window_end
    receipt = poll_until(lambda: simulator.messages(rcpt="buyer@hours.test"), "the receipt")
    assert receipt[0]["arrived"] < window_end  # not held: it went during the window
    assert "prohibited hours" in held["reason"]
    campaign = poll_until(
        lambda: simulator.messages(rcpt="fan@hours.test"),
        "the campaign mail after the window",
        timeout=max(30.0, window_end - time.time() + 30),
        every=0.5,
    )
    assert window_end <= campaign[0]["arrived"] <= window_end + 2 + 10  # spread 2 s + slack
