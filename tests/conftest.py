"""Fixtures shared by every test layer: waiting, a private RabbitMQ vhost, a chdb directory."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEV_POLICY = ROOT / "postline.dev.yaml"
T = TypeVar("T")


def poll_until(check: Callable[[], T], what: str, timeout: float = 30.0, every: float = 0.1) -> T:
    """Call ``check`` until it returns something truthy; fail naming ``what`` we waited for."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A fresh RabbitMQ vhost for one test, deleted afterwards (no queue outlives its test)."""
    vhost = f"postline-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def management_vhost(amqp_url: str) -> str:
    return amqp_url.rsplit("/", 1)[1]
