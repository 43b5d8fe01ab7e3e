"""The fault suite: while mail flows, every part fails in turn, and nothing accepted is lost.

The whole system runs as processes (as ``make run`` does, its supervisor restarting what dies)
on a private RabbitMQ node, with the reports' and bounce's ClickHouse on small tmpfs disks. A
client load sends ``POSTLINE_FAULT_MESSAGES`` messages over SMTP — most to ordinary
recipients, some to destinations that are slow, never answer, answer garbage, take a message
then drop the connection, or refuse it — and sends again whatever did not get a ``250``.
Meanwhile, one after another:

- ingress is killed with ``kill -9`` in the middle of a DATA (that message must never appear);
- the scheduler, a sender in the middle of deliveries, bounce and reports are killed;
- RabbitMQ is restarted (``rabbitmqctl stop_app``, a few seconds, ``start_app``): every
  service's ``/readyz`` says 503 meanwhile, and each comes back by itself;
- the ClickHouse disks of reports and bounce fill up: their ``/readyz`` say so, events wait in
  their queues and arrive once there is room again.

Then, once everything settled: every accepted message has its final status in the delivery log
(the expected one for its destination), every delivered one reached the destination, the
statistics equal the delivery log, and duplicates are counted (SMTP is at-least-once).

Bounded here; ``make faults`` runs a longer version (more messages, each fault twice) and
writes the figures recorded in bench/README.md (``POSTLINE_FAULT_REPORT``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from postline.devstack import Ports, Stack
from postline.simulator.client import SimulatorClient
from tests.conftest import CALL_FAILED
from tests.e2e.conftest import PORT_OFFSET, shifted_policy
from tests.faults_support import (
    Ballast,
    Load,
    Outcome,
    Supervision,
    api_data,
    can_mount,
    encode_plain,
    http,
    kill,
    queued_by_sender,
    readiness,
    wait_ready,
)
from tests.polling import poll_until
from tests.rabbitmq_node import RabbitNode

pytestmark = pytest.mark.e2e

MESSAGES = int(os.environ.get("POSTLINE_FAULT_MESSAGES", "800"))
RATE = float(os.environ.get("POSTLINE_FAULT_RATE", "40"))
ROUNDS = int(os.environ.get("POSTLINE_FAULT_ROUNDS", "1"))
REPORT = os.environ.get("POSTLINE_FAULT_REPORT")
# Where to keep the run's data and logs (ClickHouse's are on tmpfs disks, gone with the test).
KEEP = os.environ.get("POSTLINE_FAULT_KEEP")
BROKER_DOWN_SECONDS = 6.0
DISK_FULL_SECONDS = 8.0

# Short SMTP timeouts, so a destination that never answers is given up in seconds.
SENDER_ENV = {
    "POSTLINE_SMTP_TIMEOUT_CONNECT": "5",
    "POSTLINE_SMTP_TIMEOUT_GREETING": "5",
    "POSTLINE_SMTP_TIMEOUT_EHLO": "5",
    "POSTLINE_SMTP_TIMEOUT_MAIL": "5",
    "POSTLINE_SMTP_TIMEOUT_RCPT": "3",
    "POSTLINE_SMTP_TIMEOUT_DATA_INIT": "5",
    "POSTLINE_SMTP_TIMEOUT_DATA_BLOCK": "5",
    "POSTLINE_SMTP_TIMEOUT_DATA_END": "10",
}


def fault_policy(tmp_path: Path, ports: Ports) -> Path:
    """The dev policy, retrying after 2 s instead of 10 min."""
    path = shifted_policy(tmp_path, ports)
    text = path.read_text()
    assert "      interval: 10m\n" in text
    path.write_text(text.replace("      interval: 10m\n", "      interval: 2s\n"))
    return path


class Faults:
    """The stack and what breaks it; each fault returns what it observed."""

    def __init__(self, stack: Stack, node: RabbitNode, disks: list[Ballast], run: str) -> None:
        self.stack = stack
        self.node = node
        self.disks = disks
        self.run = run

    def ingress_killed_mid_data(self) -> dict[str, Any]:
        host, _, port = self.stack.ports.smtp.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            stream = sock.makefile("rwb")

            def command(line: str) -> bytes:
                stream.write(line.encode() + b"\r\n")
                stream.flush()
                reply = stream.readline()
                while reply[3:4] == b"-":
                    reply = stream.readline()
                return reply

            stream.readline()  # greeting
            assert command("EHLO fault.test").startswith(b"250")
            assert command(f"AUTH PLAIN {encode_plain('dev', 'dev-secret')}").startswith(b"235")
            assert command("MAIL FROM:<load@example.test>").startswith(b"250")
            assert command("RCPT TO:<user+middata@a.test>").startswith(b"250")
            assert command("DATA").startswith(b"354")
            stream.write(
                f"X-Api-Data: {api_data(self.run, 'middata')}\r\nSubject: half\r\n\r\n".encode()
            )
            stream.write(b"the first half of a message that never ends\r\n")
            stream.flush()
            kill(self.stack, "ingress")
            try:
                leftover = stream.read()
            except ConnectionError:
                leftover = b""
        assert leftover == b"", f"a reply to a half message: {leftover!r}"
        return {"half_message": api_data(self.run, "middata")}

    def killed(self, name: str) -> Callable[[], dict[str, Any]]:
        def inject() -> dict[str, Any]:
            kill(self.stack, name)
            return {}

        return inject

    def sender_killed_mid_delivery(self) -> dict[str, Any]:
        url = f"http://{self.stack.ports.health('sender')}/metrics"

        def in_flight() -> float:
            _, body = http(url)
            for line in body.splitlines():
                if line.startswith("postline_sender_in_flight "):
                    return float(line.split()[1])
            return 0.0

        try:
            busy = poll_until(in_flight, "deliveries in flight at the sender", timeout=20)
        except AssertionError:
            busy = 0.0
        kill(self.stack, "sender")
        return {"deliveries_in_flight": busy}

    def broker_restarted(self) -> dict[str, Any]:
        self.node.stop_app()
        down = time.monotonic()

        def every_service_unready() -> dict[str, str] | None:
            answers = readiness(self.stack)
            said = {n: body for n, (status, body) in answers.items() if status == 503}
            return (
                said
                if len(said) == len(answers) and all("rabbitmq" in body for body in said.values())
                else None
            )

        said = poll_until(every_service_unready, "every /readyz to say 503", timeout=30)
        time.sleep(max(0.0, BROKER_DOWN_SECONDS - (time.monotonic() - down)))
        self.node.start_app()
        return {
            "unready_while_down": sorted(said),
            "down_seconds": round(time.monotonic() - down, 1),
        }

    def clickhouse_full(self) -> dict[str, Any]:
        for disk in self.disks:
            disk.fill()
        full = time.monotonic()
        try:

            def unready() -> dict[str, str] | None:
                answers = {n: readiness(self.stack)[n] for n in ("reports", "bounce")}
                said = {n: body for n, (status, body) in answers.items() if status == 503}
                return said if len(said) == 2 else None

            said = poll_until(unready, "reports and bounce to say ClickHouse fails", timeout=60)
            time.sleep(max(0.0, DISK_FULL_SECONDS - (time.monotonic() - full)))
        finally:
            for disk in self.disks:
                disk.drain()
        assert all("clickhouse" in body.lower() for body in said.values()), said
        return {"unready": {n: body.strip() for n, body in said.items()}}


def print_logs(folder: Path) -> None:
    for log in sorted(folder.glob("*.log")):
        print(f"==== {log.name}\n{log.read_text(errors='replace')[-6000:]}")


@pytest.fixture
def faulty(
    rabbit_node: RabbitNode, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Stack, list[Ballast]]]:
    if not can_mount(tmp_path):
        pytest.skip("cannot mount a tmpfs here (root needed): no full-disk fault")
    ports = Ports(offset=PORT_OFFSET)
    stack = Stack(
        policy=fault_policy(tmp_path, ports),
        data_dir=tmp_path / "var",
        amqp_url=rabbit_node.new_vhost(),
        ports=ports,
        shards=2,
        log_dir=tmp_path / "logs",
        extra_env=SENDER_ENV,
        simulator_slow_seconds=2.0,
    )
    disks = [
        Ballast(Path(stack.clickhouse_dsn.removeprefix("chdb://"))),
        Ballast(Path(stack.bounce_clickhouse_dsn.removeprefix("chdb://"))),
    ]
    try:
        for disk in disks:
            disk.mount()
        stack.start(timeout=120)
        yield stack, disks
    except BaseException:
        print_logs(tmp_path / "logs")
        raise
    else:
        if request.node.stash.get(CALL_FAILED, False):
            print_logs(tmp_path / "logs")
    finally:
        stack.stop()
        if KEEP:
            shutil.rmtree(KEEP, ignore_errors=True)
            for name in ("var", "logs"):
                shutil.copytree(tmp_path / name, Path(KEEP) / name, dirs_exist_ok=True)
        for disk in disks:
            disk.unmount()


@pytest.mark.timeout(int(os.environ.get("POSTLINE_FAULT_TIMEOUT", "900")))
def test_nothing_accepted_is_lost_through_every_fault(
    faulty: tuple[Stack, list[Ballast]], rabbit_node: RabbitNode
) -> None:
    stack, disks = faulty
    run = uuid.uuid4().hex[:6]
    faults = Faults(stack, rabbit_node, disks, run)
    schedule: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("ingress killed mid-DATA", faults.ingress_killed_mid_data),
        ("scheduler killed", faults.killed("scheduler")),
        ("sender killed mid-delivery", faults.sender_killed_mid_delivery),
        ("bounce killed", faults.killed("bounce")),
        ("reports killed", faults.killed("reports")),
        ("RabbitMQ restarted", faults.broker_restarted),
        ("ClickHouse disks full", faults.clickhouse_full),
    ] * ROUNDS
    simulator = SimulatorClient(f"http://{stack.ports.simulator_control}")
    load = Load(stack.ports.smtp, run, MESSAGES, rate=RATE)
    observed: list[dict[str, Any]] = []
    ingress_kills: list[float] = []
    started = time.monotonic()
    with Supervision(stack) as supervision:
        load.start()
        for index, (name, inject) in enumerate(schedule):
            due = MESSAGES * (index + 1) // (len(schedule) + 1)
            poll_until(
                lambda due=due: load.accepted >= due, f"{due} accepted before: {name}", 300, 0.2
            )
            at = time.monotonic()
            if name == "ingress killed mid-DATA":
                ingress_kills.append(at)
            detail = inject()
            wait_ready(stack, name, 180)
            observed.append(
                {"fault": name, "ready_again_after": round(time.monotonic() - at, 1), **detail}
            )
        load.join(timeout=600)

        def settled() -> Outcome | None:
            outcome = Outcome.read(stack.ports.reports, simulator)
            waiting = rabbit_node.messages(stack.amqp_url.rsplit("/", 1)[1])
            busy = {q: n for q, n in waiting.items() if n and q.startswith(("reports", "bounce"))}
            return None if outcome.unsettled(load) or busy else outcome

        outcome = poll_until(settled, "every accepted message's final status", 600, 2.0)
        restarts = supervision.supervisor.restarts
    settle_seconds = round(time.monotonic() - started, 1)

    rows = outcome.rows_by_api_data()
    accepted = [item for item in load.sent.values() if item.queued_as]
    wrong = {
        api_data(run, item.n): (item.expected, [r["status"] for r in rows[api_data(run, item.n)]])
        for item in accepted
        if item.expected not in {r["status"] for r in rows[api_data(run, item.n)]}
    }
    succeeded = [r for r in outcome.log if r["status"] == "succeeded"]
    # The failure notices to the clients' envelope sender are deliveries too, with the null
    # sender: counted at the destination as such rather than by a VERP address.
    notices = [r for r in succeeded if outcome.is_notice(r)]
    not_received = [
        r["deliveryId"]
        for r in succeeded
        if not outcome.is_notice(r) and not outcome.received[r["deliveryId"]]
    ]
    counts = outcome.log_counts()
    recipient_of = {r["deliveryId"]: r["to"] for r in outcome.log}
    extra = {d: n - 1 for d, n in outcome.received.items() if n > 1}
    duplicates = {
        "accepted_twice": sum(1 for found in rows.values() if len(found) > 1),
        "delivered_more_than_once": len(extra),
        "extra_copies_at_destination": sum(extra.values()),
        # a "drop" destination keeps the message and hangs up: its second copy is expected
        "extra_copies_not_from_drop": sum(
            n for d, n in extra.items() if not recipient_of.get(d, "").startswith("drop+")
        ),
    }
    logged = Counter(row["from"] for row in outcome.log)
    counted = queued_by_sender(stack.ports.reports)
    # (log rows, queued counted) per envelope sender where they differ: "" are the notices
    by_sender = {s: (n, counted.get(s, 0)) for s, n in logged.items() if n != counted.get(s, 0)}
    figures = {
        "messages": MESSAGES,
        "accepted": len(accepted),
        "client_retries": sum(item.attempts - 1 for item in load.sent.values()),
        "client_refusals": dict(sum((i.refusals for i in load.sent.values()), Counter())),
        "delivery_log": dict(counts),
        "statistics": outcome.stats,
        "queued_events_lost": len(outcome.log) - outcome.stats["queued"],
        "queued_events_lost_by_sender": by_sender,
        "accepted_around_ingress_kills": sum(
            load.accepted_between(t - 2.0, t + 1.0) for t in ingress_kills
        ),
        "duplicates": duplicates,
        "failure_notices": len(notices),
        "faults": observed,
        "restarts": restarts,
        "seconds": settle_seconds,
    }
    if REPORT:
        Path(REPORT).write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))

    assert len(accepted) == MESSAGES  # every message was accepted in the end (clients retry)
    assert api_data(run, "middata") not in rows, "the half message was accepted"
    assert not wrong, f"{len(wrong)} accepted messages without their final status: {wrong}"
    assert not not_received, f"{len(not_received)} succeeded but never reached the destination"
    assert notices, "no failure notice was sent for the failed deliveries"
    assert outcome.notices_received >= len(notices), "a succeeded notice never arrived"
    # One failure notice per failed delivery, one row each, all delivered, each counted once:
    # a notice made again after a scheduler's crash is the same delivery at the same moment.
    notice_rows = [r for r in outcome.log if outcome.is_notice(r)]
    failed_mail = [r for r in outcome.log if r["status"] == "failed" and not outcome.is_notice(r)]
    assert len(notice_rows) == len(failed_mail), (len(notice_rows), len(failed_mail))
    assert {r["status"] for r in notice_rows} == {"succeeded"}, Counter(
        r["status"] for r in notice_rows
    )
    assert counted.get("", 0) == len(notice_rows), by_sender
    # A queued event is published just after the delivery's 250, so as not to make the reply
    # wait for a second confirm; one whose ingress is killed before its confirm is lost (the
    # delivery is not: its row comes from its later events). At most the messages accepted in
    # the moments around each kill of ingress (their events' confirm still pending under load).
    lost_queued = len(outcome.log) - outcome.stats["queued"]
    around_kills = sum(load.accepted_between(t - 2.0, t + 1.0) for t in ingress_kills)
    assert 0 <= lost_queued <= around_kills, (lost_queued, around_kills, outcome.stats, by_sender)
    assert outcome.stats["succeeded"] == counts["succeeded"], (outcome.stats, dict(counts))
    assert outcome.stats["failed"] == counts["failed"], (outcome.stats, dict(counts))
    for name in ("ingress", "scheduler", "sender", "bounce", "reports"):
        assert restarts.get(name, 0) >= 1, f"{name} was not restarted: {restarts}"
    # Every service logged its reconnections: none with the broker's password.
    credentials = stack.amqp_url.split("//", 1)[1].split("@", 1)[0]
    assert stack.log_dir is not None
    for log in sorted(stack.log_dir.glob("*.log")):
        assert f"{credentials}@" not in log.read_text(errors="replace"), f"a password in {log.name}"
