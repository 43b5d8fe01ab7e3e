"""A service that does not stop soon after SIGTERM says what it waits for, in its log.

A real process: a service-shaped ``main`` on ``runtime.run`` whose shutdown blocks, first in a
coroutine (the tasks are listed with where each one waits), then in a blocking call (every
thread's stack).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, time
    from postline.common import runtime

    runtime.SLOW_STOP_SECONDS = 0.5
    logging.basicConfig(level=logging.INFO)

    async def closing_the_store():
        await asyncio.sleep(1.0)

    async def main():
        stop = runtime.stop_event()
        print("ready", flush=True)
        await stop.wait()
        await closing_the_store()
        time.sleep(6)

    runtime.run(main)
    """
)


def test_a_slow_stop_logs_the_waiting_tasks_then_every_threads_stack() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert time.monotonic() - started >= 6, "the stop itself is not cut short"
    tasks = output.index("still stopping after 0.5 s; 1 tasks wait:")
    assert "main (<string>" in output[tasks:] and "closing_the_store (<string>" in output[tasks:]
    threads = output.index("still not stopped after 5.5 s; every thread's stack:")
    assert threads > tasks
    assert 'File "<string>", line 16 in main' in output[threads:], output
