"""Fixtures shared by every test layer: a private RabbitMQ vhost, a chdb directory.

Waiting is ``tests.polling`` (re-exported here for the tests that import it from conftest).
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from postline.common.runtime import keep_grpc_aio
from tests import rabbitmq_node
from tests.polling import apoll_until, poll_until
from tests.rabbitmq_node import RabbitNode

ROOT = Path(__file__).resolve().parent.parent
DEV_POLICY = ROOT / "postline.dev.yaml"
# Set on a test's item when its call failed: a fixture tearing down after it can print what
# it holds (a stack's logs), since pytest does not raise a test's failure in its fixtures.
CALL_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """gRPC's asyncio runtime held for the whole session, as every service holds it
    (``runtime.keep_grpc_aio``): tests start and drop many servers and channels, each on its
    own event loop, and the last one freed must never shut it down from another thread."""

    async def keep() -> None:
        keep_grpc_aio()

    asyncio.run(keep())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    if report.when == "call" and report.failed:
        item.stash[CALL_FAILED] = True
    return report


__all__ = ["DEV_POLICY", "ROOT", "apoll_until", "poll_until"]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _erlang_binaries(names: list[str]) -> str:
    return "[" + ", ".join(f'<<"{name}">>' for name in names) + "]"


class VhostPool:
    """Fresh vhosts for tests, made and removed in batches.

    Every ``rabbitmqctl`` call starts an Erlang VM (~1.5 s here), and a vhost took three of them
    (add, permissions, delete): most of the integration suite's time. One ``rabbitmqctl eval``
    makes a whole batch, and used vhosts are deleted a batch at a time and at the end of the
    session. A test still never shares a vhost. Where ``eval`` is refused (another RabbitMQ
    release with other internals), each vhost is made and deleted on its own as before.
    """

    BATCH = 25

    def __init__(self) -> None:
        self._free: list[str] = []
        self._used: list[str] = []
        self._batched = True

    def take(self) -> str:
        if not self._free:
            self._free = self._make(self.BATCH)
        vhost = self._free.pop()
        self._used.append(vhost)
        return vhost

    def release(self) -> None:
        if len(self._used) >= self.BATCH:
            self._delete(self._used)
            self._used = []

    def close(self) -> None:
        self._delete(self._used + self._free)
        self._used, self._free = [], []

    def _make(self, count: int) -> list[str]:
        names = [f"postline-test-{uuid.uuid4().hex[:12]}" for _ in range(count)]
        if self._batched:
            try:
                _rabbitmqctl(
                    "eval",
                    f'[begin rabbit_vhost:add(V, <<"tests">>), '
                    f'rabbit_auth_backend_internal:set_permissions(<<"guest">>, V, '
                    f'<<".*">>, <<".*">>, <<".*">>, <<"tests">>) end '
                    f"|| V <- {_erlang_binaries(names)}], ok.",
                )
                return names
            except subprocess.CalledProcessError:
                self._batched = False
        _rabbitmqctl("add_vhost", names[0])
        _rabbitmqctl("set_permissions", "-p", names[0], "guest", ".*", ".*", ".*")
        return names[:1]

    def _delete(self, names: list[str]) -> None:
        if not names:
            return
        if self._batched:
            _rabbitmqctl(
                "eval",
                f'[rabbit_vhost:delete(V, <<"tests">>) || V <- {_erlang_binaries(names)}], ok.',
            )
        else:
            for name in names:
                _rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="session")
def vhost_pool() -> Iterator[VhostPool]:
    pool = VhostPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def amqp_url(vhost_pool: VhostPool) -> Iterator[str]:
    """A fresh RabbitMQ vhost for one test (deleted with its batch, at the latest when the
    session ends)."""
    vhost = vhost_pool.take()
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        vhost_pool.release()


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
