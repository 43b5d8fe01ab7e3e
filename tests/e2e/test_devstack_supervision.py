"""``make run`` keeps the stack running: a service killed with ``kill -9`` is started again,
with a clear line in the output, and Ctrl-C still stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from postline.devstack import Ports
from tests.e2e.conftest import PORT_OFFSET, shifted_policy
from tests.polling import poll_until
from tests.sender_support import http_ok

pytestmark = pytest.mark.e2e


def children(pid: int) -> dict[int, str]:
    """The child processes of ``pid``: their pids and command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found[int(entry.name)] = cmdline
    return found


def test_a_killed_service_is_restarted_and_ctrl_c_stops_all(amqp_url: str, tmp_path: Path) -> None:
    ports = Ports(offset=PORT_OFFSET)
    output = tmp_path / "make-run.out"
    command = [
        sys.executable, "-m", "postline.devstack",
        "--policy", str(shifted_policy(tmp_path, ports)),
        "--data-dir", str(tmp_path / "var"),
        "--amqp-url", amqp_url,
        "--shards", "2",
        "--port-offset", str(PORT_OFFSET),
    ]  # fmt: skip
    with open(output, "wb") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        poll_until(lambda: "Postline is running" in output.read_text(), "the stack", timeout=120)
        started = children(run.pid)
        sender = next(pid for pid, cmd in started.items() if "postline.sender" in cmd)

        os.kill(sender, signal.SIGKILL)
        poll_until(
            lambda: "devstack: sender killed by SIGKILL; restarting it in 1s (restart 1)"
            in output.read_text(),
            "the supervisor's line",
        )
        poll_until(lambda: "devstack: sender started again" in output.read_text(), "a restart")
        poll_until(
            lambda: http_ok(f"http://{ports.health('sender')}/readyz"), "the new sender ready"
        )
        assert run.poll() is None  # make run goes on
        restarted = children(run.pid)
        assert sender not in restarted
        assert any("postline.sender" in cmd for cmd in restarted.values())

        run.send_signal(signal.SIGINT)  # Ctrl-C
        assert run.wait(60) == 0
        poll_until(lambda: not children(run.pid), "every process stopped")
        assert not any(Path(f"/proc/{pid}").exists() for pid in restarted)
    finally:
        if run.poll() is None:
            leftovers = children(run.pid)
            run.kill()
            run.wait()
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)
