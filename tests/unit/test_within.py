"""``runtime.within``: a bounded wait that never loses a cancel (Python 3.11's ``wait_for``
drops one that lands as its wait completes, and a task asked to stop then goes on)."""

from __future__ import annotations

import asyncio

import pytest

from postline.common.runtime import within


async def test_within_gives_the_result_or_times_out() -> None:
    done = asyncio.get_running_loop().create_future()
    done.set_result(7)
    assert await within(done, 1) == 7
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)


async def test_a_cancel_that_lands_as_the_wait_ends_is_kept() -> None:
    event = asyncio.Event()
    went_on = False

    async def waiting() -> None:
        nonlocal went_on
        await within(event.wait(), 10)
        went_on = True  # a stopped task going on: what wait_for does on Python 3.11

    task = asyncio.create_task(waiting())
    await asyncio.sleep(0)  # the task waits
    event.set()  # its wait ends and, in the same pass of the loop, it is cancelled
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not went_on


async def test_the_same_moment_loses_the_cancel_with_wait_for() -> None:
    """The case above with ``asyncio.wait_for``, so the test above tests something: on this
    Python the cancel is lost (it is kept from Python 3.12 on, where wait_for uses timeout)."""
    import sys

    if sys.version_info >= (3, 12):
        pytest.skip("wait_for keeps the cancel from Python 3.12 on")
    event = asyncio.Event()
    went_on = False

    async def waiting() -> None:
        nonlocal went_on
        await asyncio.wait_for(event.wait(), 10)
        went_on = True

    task = asyncio.create_task(waiting())
    await asyncio.sleep(0)
    event.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert went_on
