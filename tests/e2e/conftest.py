"""The whole system as separate processes, on shifted ports, a private vhost and data dir."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from postline.devstack import Ports, Stack
from postline.simulator.client import SimulatorClient
from tests.conftest import DEV_POLICY

# Shifted ports keep e2e runs clear of a running `make run`; POSTLINE_TEST_PORT_OFFSET lets
# several suites run side by side on one machine. 11000 puts the gRPC ports (50051-50054) at
# 61051-61054, above Linux's ephemeral range (32768-60999): with 10000 they sat inside it, and
# an outgoing connection of a busy machine could hold 60051 and stop ingress from binding.
PORT_OFFSET = int(os.environ.get("POSTLINE_TEST_PORT_OFFSET", "11000"))


def shifted_policy(tmp_path: Path, ports: Ports) -> Path:
    """The dev policy with its simulator route pointed at the shifted simulator port."""
    text = DEV_POLICY.read_text()
    assert "to: 127.0.0.1:2600" in text
    path = tmp_path / "postline.test.yaml"
    path.write_text(text.replace("to: 127.0.0.1:2600", f"to: {ports.simulator}"))
    return path


def running(tmp_path: Path, amqp_url: str, **env: str) -> Iterator[Stack]:
    """The stack started, yielded, stopped; every process must exit cleanly. The logs are
    printed when something failed (``env``: extra environment for every service)."""
    ports = Ports(offset=PORT_OFFSET)
    stack = stack_in(tmp_path, shifted_policy(tmp_path, ports), amqp_url, ports, extra_env=env)
    with started(stack, timeout=90) as up:
        yield up


def stack_in(tmp: Path, policy: Path, amqp_url: str, ports: Ports, **options: Any) -> Stack:
    """A two-shard stack keeping its data and its services' logs under ``tmp``."""
    return Stack(
        policy=policy,
        data_dir=tmp / "var",
        amqp_url=amqp_url,
        ports=ports,
        shards=2,
        log_dir=tmp / "logs",
        **options,
    )


@contextlib.contextmanager
def started(stack: Stack, *, timeout: float = 120) -> Iterator[Stack]:
    """The stack started, yielded, stopped: every process must exit cleanly, and the tail of
    each service's log is printed when something failed."""
    failed = False
    try:
        stack.start(timeout=timeout)
        yield stack
    except BaseException:
        failed = True
        raise
    finally:
        codes = stack.stop()
        if failed or any(code != 0 for code in codes.values()):
            for log in sorted(stack.log_dir.glob("*.log")) if stack.log_dir else []:
                print(f"==== {log.name}\n{log.read_text(errors='replace')[-6000:]}")
        assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


@pytest.fixture
def stack(amqp_url: str, tmp_path: Path) -> Iterator[Stack]:
    yield from running(tmp_path, amqp_url)


@pytest.fixture
def simulator(stack: Stack) -> SimulatorClient:
    return SimulatorClient(f"http://{stack.ports.simulator_control}")


def up_to_today() -> dict[str, str]:
    """The days a test's own rows fall on, read when asked: from yesterday to today (UTC), so a
    test running across midnight still finds what it sent a moment before."""
    today = datetime.now(UTC).date()
    return {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}


class ReportsClient:
    def __init__(self, base: str, user: str = "dev", secret: str = "dev-secret") -> None:
        self.base = base
        self.auth = f"Bearer {user}:{secret}"

    def get(self, path: str, **params: str) -> dict[str, Any]:
        query = {**up_to_today(), **params}
        url = f"{self.base}{path}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, headers={"Authorization": self.auth})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.fixture
def reports(stack: Stack) -> ReportsClient:
    return ReportsClient(f"http://{stack.ports.reports}")
