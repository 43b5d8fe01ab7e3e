"""What the scheduler's end-to-end modules share: a whole stack on a private vhost with the
server settings a module needs, the destination simulator and the reports API to read it by,
and mail sent over SMTP."""

from __future__ import annotations

import contextlib
import smtplib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from postline.devstack import Ports, Stack
from postline.simulator.client import SimulatorClient
from tests.conftest import DEV_POLICY
from tests.e2e.conftest import PORT_OFFSET, ReportsClient, stack_in, started


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
        policy = write_policy(tmp / "postline.yaml", ports, server)
        stack = stack_in(tmp, policy, amqp_url, ports, extra_env=extra_env, **options)
        with started(stack) as up:
            yield Running(
                up,
                SimulatorClient(f"http://{ports.simulator_control}"),
                ReportsClient(f"http://{ports.reports}"),
            )


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
