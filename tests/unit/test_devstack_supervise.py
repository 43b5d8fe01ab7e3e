"""The local stack's supervisor: a process that dies is started again, later each time."""

from __future__ import annotations

import sys
from pathlib import Path

from postline.devstack.stack import Stack
from postline.devstack.supervise import Supervisor, describe_exit
from tests.polling import poll_until

SLEEPER = ["-c", "import time; time.sleep(60)"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def supervised(tmp_path: Path) -> tuple[Stack, Supervisor, Clock, list[str]]:
    stack = Stack(policy=tmp_path / "p.yaml", data_dir=tmp_path, log_dir=tmp_path / "logs")
    stack._spawn("sender", SLEEPER, {})
    clock, said = Clock(), []
    return stack, Supervisor(stack, clock=clock, say=said.append), clock, said


def test_a_dead_process_is_started_again_with_growing_waits(tmp_path: Path) -> None:
    stack, supervisor, clock, said = supervised(tmp_path)
    try:
        supervisor.check()
        first = stack.processes["sender"]
        first.kill()
        first.wait()
        supervisor.check()
        assert said == ["sender killed by SIGKILL; restarting it in 1s (restart 1)"]
        supervisor.check()
        assert stack.processes["sender"] is first  # not before its wait is over
        clock.now += 1
        supervisor.check()
        second = stack.processes["sender"]
        assert second is not first and second.poll() is None
        assert said[-1] == "sender started again"

        second.kill()
        second.wait()
        clock.now += 5  # died again soon: it waits longer
        supervisor.check()
        assert said[-1] == "sender killed by SIGKILL; restarting it in 2s (restart 2)"
        clock.now += 2
        supervisor.check()
        third = stack.processes["sender"]
        poll_until(lambda: third.pid and third.poll() is None, "the third start")

        clock.now += 120  # ran stably for a while: the next death waits 1 s again
        third.kill()
        third.wait()
        supervisor.check()
        assert said[-1] == "sender killed by SIGKILL; restarting it in 1s (restart 1)"
    finally:
        stack.stop(timeout=5)


def test_exit_descriptions() -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"


def test_the_command_is_kept_for_a_respawn(tmp_path: Path) -> None:
    stack, _, _, _ = supervised(tmp_path)
    try:
        assert stack.commands["sender"] == (SLEEPER, {})
        stack.processes["sender"].kill()
        stack.processes["sender"].wait()
        stack.respawn("sender")
        assert stack.processes["sender"].args == [sys.executable, *SLEEPER]
    finally:
        stack.stop(timeout=5)
