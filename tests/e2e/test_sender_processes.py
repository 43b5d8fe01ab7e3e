"""Senders as processes on the real RabbitMQ, delivering to the simulator (also a process):
competing consumers sharing the load, SIGTERM finishing in-flight work, kill -9 losing nothing.
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from postline.common.broker.topology import SENDER_TASKS
from postline.common.verp import decode_verp
from postline.simulator.client import SimulatorClient
from postline.v1 import delivery_pb2
from tests.e2e.conftest import PORT_OFFSET
from tests.polling import poll_until
from tests.sender_support import (
    Process,
    http_ok,
    http_text,
    policy_file,
    publish_tasks,
    queue_depth,
    sender_process,
    simulator_process,
    take_results,
    task,
)

pytestmark = pytest.mark.e2e

# Ports of their own (shifted like every e2e port), clear of the devstack's.
SIMULATOR_PORT = 2610 + PORT_OFFSET
SENDER_PORTS = (9110 + PORT_OFFSET, 9111 + PORT_OFFSET)
SLOW_SECONDS = 3.0


@pytest.fixture
def processes(tmp_path: Path, amqp_url: str) -> Iterator[list[Process]]:
    """Child processes, stopped before the vhost they use is deleted."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.stop()
        for proc in started:
            print(f"==== {proc.name}\n{proc.output()[-3000:]}")


@pytest.fixture
def simulator(tmp_path: Path, processes: list[Process]) -> SimulatorClient:
    sim = simulator_process(tmp_path, SIMULATOR_PORT, SLOW_SECONDS).start()
    processes.append(sim)
    client = SimulatorClient(f"http://127.0.0.1:{SIMULATOR_PORT + 1}")
    poll_until(client.healthy, "the simulator")
    return client


def start_sender(
    tmp_path: Path, processes: list[Process], amqp_url: str, index: int, **settings: str
) -> Process:
    policy = policy_file(tmp_path, SIMULATOR_PORT)
    port = SENDER_PORTS[index]
    sender = sender_process(tmp_path, f"sender{index}", amqp_url, policy, port, **settings)
    processes.append(sender.start())
    poll_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), f"sender{index} ready")
    return sender


def attempts(index: int) -> float:
    metrics = http_text(f"http://127.0.0.1:{SENDER_PORTS[index]}/metrics")
    found = re.findall(r'^postline_sender_attempts_total\{outcome="(\w+)"\} (\S+)$', metrics, re.M)
    return sum(float(value) for _, value in found)


def test_two_senders_share_the_load_and_deliver_each_task_once(
    tmp_path: Path, processes: list[Process], simulator: SimulatorClient, amqp_url: str
) -> None:
    for index in (0, 1):
        start_sender(tmp_path, processes, amqp_url, index, concurrency="5")
    tasks = [task(f"user{i}@d{i % 4}.test", shard=i % 2) for i in range(100)]
    publish_tasks(amqp_url, tasks)

    results: list[delivery_pb2.DeliveryResult] = []

    def all_results() -> bool:
        results.extend(take_results(amqp_url))
        return len(results) >= 100

    poll_until(all_results, "100 results", timeout=90)
    assert len(results) == 100
    assert {r.task.delivery.delivery_id for r in results} == {t.delivery.delivery_id for t in tasks}
    assert all(r.outcome == delivery_pb2.OUTCOME_SUCCEEDED for r in results)

    messages = simulator.messages()
    per_recipient = Counter(rcpt for m in messages for rcpt in m["rcpt_tos"])
    assert per_recipient == Counter(t.delivery.recipient for t in tasks)  # each exactly once
    by_id = {decode_verp(m["mail_from"]) for m in messages}
    assert by_id == {t.delivery.delivery_id for t in tasks}

    done = [attempts(0), attempts(1)]
    assert sum(done) == 100
    assert all(n > 0 for n in done), f"one sender did everything: {done}"
    # Sessions were reused: far fewer connections than messages.
    assert simulator.stats()["connections"]["total"] < 50

    for proc in processes[1:]:
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


def test_sigterm_finishes_the_delivery_in_flight_and_takes_no_more(
    tmp_path: Path, processes: list[Process], simulator: SimulatorClient, amqp_url: str
) -> None:
    sender = start_sender(tmp_path, processes, amqp_url, 0)
    slow = task("slow@a.test")
    publish_tasks(amqp_url, [slow])
    poll_until(
        lambda: simulator.stats()["domains"].get("a.test", {}).get("current_connections"),
        "the slow delivery under way",
    )
    sender.signal(signal.SIGTERM)
    poll_until(lambda: "sender stopping" in sender.output(), "the sender to stop consuming")
    late = task("late@b.test")
    publish_tasks(amqp_url, [late])  # arrives while the slow delivery is still in flight

    assert sender.wait(timeout=30) == 0
    [result] = take_results(amqp_url)
    assert result.task.delivery.delivery_id == slow.delivery.delivery_id
    assert result.outcome == delivery_pb2.OUTCOME_SUCCEEDED
    assert len(simulator.messages(rcpt="slow@a.test")) == 1
    assert simulator.messages(rcpt="late@b.test") == []
    assert queue_depth(amqp_url, SENDER_TASKS) == 1  # the late task waits for another sender


def test_kill_9_mid_delivery_loses_nothing(
    tmp_path: Path, processes: list[Process], simulator: SimulatorClient, amqp_url: str
) -> None:
    doomed = start_sender(tmp_path, processes, amqp_url, 0)
    slow = task("slow@a.test")
    publish_tasks(amqp_url, [slow])
    poll_until(
        lambda: simulator.stats()["domains"].get("a.test", {}).get("current_connections"),
        "the slow delivery under way",
    )
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    assert take_results(amqp_url) == []  # it died before publishing anything

    start_sender(tmp_path, processes, amqp_url, 1)  # the task comes back to another sender
    results: list[delivery_pb2.DeliveryResult] = []
    poll_until(lambda: results.extend(take_results(amqp_url)) or results, "the redelivered result")
    [result] = results
    assert result.task.delivery.delivery_id == slow.delivery.delivery_id
    assert result.outcome == delivery_pb2.OUTCOME_SUCCEEDED
    # The first sender had sent the data, so the destination may hold it twice (SMTP's norm:
    # a duplicate rather than a loss); it holds it at least once.
    assert 1 <= len(simulator.messages(rcpt="slow@a.test")) <= 2
    assert queue_depth(amqp_url, SENDER_TASKS) == 0
