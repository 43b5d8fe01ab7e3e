"""The scheduler's policy, end to end: every service as a process, mail over SMTP, the
destination simulator counting what arrives.

One stack for the module (three senders, a simulator whose ``slow@`` takes 0.15 s): speed
limits, retries and the resend period, pause/resume from the command line, and prohibited
hours. The prohibited-hours window is set when the stack starts (windows are whole minutes)
and a campaign mail is sent into it right away; the other tests run while it is held, and
the last test checks it waited for the window's end.
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from postline.devstack import Ports, Stack
from postline.simulator.client import SimulatorClient
from tests.conftest import DEV_POLICY
from tests.e2e.conftest import ReportsClient
from tests.polling import poll_until

pytestmark = pytest.mark.e2e

PORT_OFFSET = int(os.environ.get("POSTLINE_TEST_PORT_OFFSET", "11000"))


# --- helpers the scheduler's e2e modules share ----------------------------------------------


@contextlib.contextmanager
def private_vhost() -> Iterator[str]:
    vhost = f"postline-test-{uuid.uuid4().hex[:12]}"
    ctl = ["rabbitmqctl", "-q"]
    subprocess.run([*ctl, "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    subprocess.run(
        [*ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, timeout=60)


def write_policy(path: Path, ports: Ports, server: dict[str, Any]) -> Path:
    """The dev policy (users, console) with the test's server settings and every *.test domain
    routed to this stack's simulator."""
    data = yaml.safe_load(DEV_POLICY.read_text())
    default = data["servers"]["default"]
    default.update(server)
    default["routes"] = [{"match": ["*.test"], "to": ports.simulator, "tls": "opportunistic"}]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Running:
    stack: Stack
    simulator: SimulatorClient
    reports: ReportsClient


@contextlib.contextmanager
def scheduler_stack(tmp: Path, server: dict[str, Any], **options: Any) -> Iterator[Running]:
    """A stack with the given server settings; its logs are printed if the tests fail."""
    ports = Ports(offset=PORT_OFFSET)
    extra_env = {"POSTLINE_HOLD_RELEASE_SPREAD": "2", **options.pop("extra_env", {})}
    with private_vhost() as amqp_url:
        stack = Stack(
            policy=write_policy(tmp / "postline.yaml", ports, server),
            data_dir=tmp / "var",
            amqp_url=amqp_url,
            ports=ports,
            shards=2,
            log_dir=tmp / "logs",
            extra_env=extra_env,
            **options,
        )
        failed = False
        try:
            stack.start(timeout=120)
            yield Running(
                stack,
                SimulatorClient(f"http://{ports.simulator_control}"),
                ReportsClient(f"http://{ports.reports}"),
            )
        except BaseException:
            failed = True
            raise
        finally:
            codes = stack.stop()
            if failed or any(code != 0 for code in codes.values()):
                for log in sorted((tmp / "logs").glob("*.log")):
                    print(f"==== {log.name}\n{log.read_text(errors='replace')[-6000:]}")
            assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


def send(
    stack: Stack,
    recipients: list[str],
    headers: dict[str, str] | None = None,
    subject: str = "hello",
) -> None:
    """One message over SMTP to every recipient."""
    host, port = stack.ports.smtp.rsplit(":", 1)
    lines = ["From: app@example.test", f"To: {recipients[0]}", f"Subject: {subject}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    message = "\r\n".join(lines) + "\r\n\r\nHello.\r\n"
    with smtplib.SMTP(host, int(port), timeout=60) as smtp:
        smtp.login("dev", "dev-secret")
        refused = smtp.sendmail("app@example.test", recipients, message.encode())
        assert not refused, refused
        assert smtp.noop()[0] == 250


def postline(stack: Stack, *args: str) -> str:
    """The ``postline`` command against this stack's scheduler."""
    command = [sys.executable, "-m", "postline.common.cli", *args]
    command += ["--grpc", stack.ports.scheduler_grpc]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def arrivals(simulator: SimulatorClient, domain: str) -> list[float]:
    stats = simulator.stats()["domains"].get(domain)
    return sorted(stats["arrivals"]) if stats else []


def row(reports: ReportsClient, path: str, rcpt: str, status: object) -> dict[str, Any] | None:
    rows = reports.get(path, address=rcpt)["results"]
    return next((r for r in rows if r["to"] == rcpt and r["status"] == status), None)


# --- the stack of this module ---------------------------------------------------------------


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
