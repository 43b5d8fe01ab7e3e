"""Keeping the local stack running: a process that dies is started again, with backoff.

Kubernetes restarts a crashed container; ``make run`` does the same for its processes. Each
death is said in one clear line (which process, how it ended, when it comes back); a process
that keeps dying waits longer each time (1 s, doubling, at most 30 s), and one that then ran
for a minute starts afresh at 1 s.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from postline.devstack.stack import Stack

logger = logging.getLogger(__name__)

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # seconds running after which a process's backoff starts afresh


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class _Restarts:
    count: int = 0  # restarts since it last ran stably
    due: float | None = None  # when to start it again (None: running)
    started: float = 0.0


@dataclass
class Supervisor:
    stack: Stack
    clock: Callable[[], float] = time.monotonic
    say: Callable[[str], None] = field(default=lambda line: logger.warning("%s", line))
    _state: dict[str, _Restarts] = field(default_factory=dict)

    def check(self) -> None:
        """Notice processes that died and start those whose wait is over (call it often)."""
        now = self.clock()
        for name, proc in list(self.stack.processes.items()):
            state = self._state.setdefault(name, _Restarts(started=now))
            code = proc.poll()
            if state.due is None and code is not None:
                if now - state.started >= STABLE_AFTER:
                    state.count = 0
                delay = min(MAX_DELAY, FIRST_DELAY * 2**state.count)
                state.count += 1
                state.due = now + delay
                self.say(
                    f"{name} {describe_exit(code)}; restarting it in {delay:.0f}s "
                    f"(restart {state.count})"
                )
            elif state.due is not None and now >= state.due:
                self.stack.respawn(name)
                state.due = None
                state.started = now
                self.say(f"{name} started again")

    @property
    def restarts(self) -> dict[str, int]:
        return {name: state.count for name, state in self._state.items() if state.count}
