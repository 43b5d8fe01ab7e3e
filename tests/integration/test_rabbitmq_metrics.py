"""The RabbitMQ metrics the dashboards and alert rules read, as a real broker serves them.

A private RabbitMQ node (its own name, ports and data directory; the shared broker is left
alone) runs the rabbitmq_prometheus plugin. Postline's topology is declared on it, a few
messages published, and /metrics/per-object must carry every rabbitmq_* metric the dashboards
and rules name, one series per queue, with the queue names the rules' regular expressions pick.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import REPORTS_EVENTS, SENDER_TASKS, inbound_queue
from postline.v1 import delivery_pb2
from tests.deploy_support import OBSERVABILITY
from tests.observability_support import RABBITMQ_METRICS
from tests.polling import poll_until
from tests.ports import free_port

RULES = OBSERVABILITY / "prometheus" / "rules" / "postline.rules.yaml"
SAMPLE = re.compile(r'^(\w+)\{vhost="([^"]*)",queue="([^"]*)"\} (\S+)$')


@dataclass(frozen=True)
class PrivateNode:
    amqp_url: str
    metrics_url: str


@pytest.fixture(scope="module")
def private_node() -> Iterator[PrivateNode]:
    server = shutil.which("rabbitmq-server")
    if server is None or os.geteuid() != 0:
        pytest.skip("needs rabbitmq-server and root (the node runs as the rabbitmq user)")
    # Not under pytest's tmp_path: its parents are private to root, and the node drops to the
    # rabbitmq user.
    base = Path(tempfile.mkdtemp(prefix="postline-rabbitmq-"))
    amqp, metrics, dist = free_port(), free_port(), free_port()
    node = f"postline-metrics-{uuid.uuid4().hex[:8]}@localhost"
    (base / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{amqp}\n"
        f"prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = {metrics}\n"
        "loopback_users = none\n"
    )
    for sub in ("mnesia", "log"):
        (base / sub).mkdir()
    subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(base)], check=True)
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "feature_flags"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
    }
    process = subprocess.Popen(
        [server],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        metrics_url = f"http://127.0.0.1:{metrics}/metrics/per-object"
        poll_until(lambda: _scrape(metrics_url) is not None, "the private node's metrics", 120)
        yield PrivateNode(f"amqp://guest:guest@127.0.0.1:{amqp}/", metrics_url)
    finally:
        subprocess.run(
            ["rabbitmqctl", "-n", node, "stop"], env=env, capture_output=True, timeout=60
        )
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def _scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            body: bytes = answer.read()
            return body.decode()
    except OSError:
        return None


def per_queue(url: str) -> dict[str, dict[str, float]]:
    """metric -> queue -> value, from the per-object endpoint."""
    found: dict[str, dict[str, float]] = {}
    for line in (_scrape(url) or "").splitlines():
        match = SAMPLE.match(line)
        if match:
            name, _, queue, value = match.groups()
            found.setdefault(name, {})[queue] = float(value)
    return found


async def _publish(amqp_url: str) -> None:
    broker = Broker(amqp_url, Topology(2, "quorum"))
    await broker.connect()
    try:
        await broker.publish("task", delivery_pb2.DeliveryTask(attempt=1), priority=2)
        await broker.publish("accepted.1", delivery_pb2.AcceptedDelivery(delivery_id="d1"))
    finally:
        await broker.close()


def test_queue_depths_are_there_per_queue(private_node: PrivateNode) -> None:
    asyncio.run(_publish(private_node.amqp_url))
    wanted = {SENDER_TASKS, inbound_queue(1)}

    def both_counted() -> dict[str, dict[str, float]] | None:
        found = per_queue(private_node.metrics_url)
        counted = {q for q, n in found.get("rabbitmq_queue_messages", {}).items() if n}
        return found if wanted <= counted else None

    # A quorum queue's figures come from its leader's periodic report: wait for them.
    metrics = poll_until(both_counted, "the two queues' depths in the per-queue metrics", 60)
    assert RABBITMQ_METRICS <= metrics.keys()
    depth = metrics["rabbitmq_queue_messages"]
    assert depth[SENDER_TASKS] == 1  # a classic priority queue
    assert depth[inbound_queue(1)] == 1  # a quorum queue
    assert metrics["rabbitmq_queue_messages_ready"][SENDER_TASKS] == 1
    # The backlog alert's recording rule picks the queues it is about, and only those.
    (rule,) = [
        r
        for g in yaml.safe_load(Path(RULES).read_text())["groups"]
        for r in g["rules"]
        if r.get("record") == "postline:queue_messages:sum"
    ]
    pattern = re.search(r'queue=~"([^"]+)"', rule["expr"])
    assert pattern
    regex = re.compile(pattern.group(1).replace("\\\\", "\\"))
    backlog = "scheduler.backlog.0.example.com"  # what the scheduler names a speed key's backlog
    names = {spec.name for spec in Topology(2).queues()} | set(depth) | {backlog}
    names |= {"scheduler.state.0", "scheduler.owner.0", REPORTS_EVENTS}
    picked = {queue for queue in names if regex.fullmatch(queue)}
    assert picked == {SENDER_TASKS, inbound_queue(0), inbound_queue(1), backlog}
