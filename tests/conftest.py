"""Fixtures shared by every test layer: waiting, a private RabbitMQ vhost, a chdb directory."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests import rabbitmq_node
from tests.rabbitmq_node import RabbitNode

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


async def apoll_until(
    check: Callable[[], Awaitable[T] | T], what: str, timeout: float = 30.0, every: float = 0.1
) -> T:
    """``poll_until`` for async tests: ``check`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        outcome = check()
        last = await outcome if inspect.isawaitable(outcome) else outcome
        if last:
            return last
        await asyncio.sleep(every)
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


@pytest.fixture(scope="session")
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A private RabbitMQ node for tests that restart or cut the broker (never the shared
    one); started once per session, on demand."""
    if not rabbitmq_node.available():
        pytest.skip("rabbitmq-server is not installed")
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    node.start()
    try:
        yield node
    finally:
        node.remove()


@pytest.fixture
def private_amqp_url(rabbit_node: RabbitNode) -> str:
    """A fresh vhost on the private node (see ``rabbit_node``)."""
    return rabbit_node.new_vhost()


@pytest.fixture
def management_vhost(amqp_url: str) -> str:
    return amqp_url.rsplit("/", 1)[1]
