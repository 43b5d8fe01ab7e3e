"""Waiting in tests: poll a condition until it holds, failing with what was waited for.

Never a bare sleep: a test waits for the thing it needs (``poll_until(check, "what")``), as
long as the machine needs and no longer, and a timeout names the thing that never came.
``poll_until`` is for synchronous tests (it blocks); ``apoll_until`` for async ones (it yields
to the event loop, so the code under test keeps running in the same loop). Both check once more
after the deadline has passed: a condition met during the last wait (or during a slow check)
is a success, not a timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(check: Callable[[], T], what: str, timeout: float = 30.0, every: float = 0.1) -> T:
    """Call ``check`` until it returns something truthy; fail naming ``what`` we waited for."""
    deadline = time.monotonic() + timeout
    while True:
        final = time.monotonic() >= deadline
        last = check()
        if last:
            return last
        if final:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(every)


async def apoll_until(
    check: Callable[[], Awaitable[T] | T], what: str, timeout: float = 30.0, every: float = 0.05
) -> T:
    """``poll_until`` for async tests: ``check`` may be a plain or a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        final = time.monotonic() >= deadline
        outcome = check()
        last = await outcome if inspect.isawaitable(outcome) else outcome
        if last:
            return last
        if final:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(every)
