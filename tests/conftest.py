"""Fixtures shared by every test layer: a private RabbitMQ vhost, a chdb directory.

Waiting is ``tests.polling`` (re-exported here for the tests that import it from conftest).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import rabbitmq_node
from tests.polling import apoll_until, poll_until
from tests.rabbitmq_node import RabbitNode

ROOT = Path(__file__).resolve().parent.parent
DEV_POLICY = ROOT / "postline.dev.yaml"
__all__ = ["DEV_POLICY", "ROOT", "apoll_until", "poll_until"]


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
