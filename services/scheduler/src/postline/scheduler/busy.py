"""Work in progress that can be waited on to finish (a handler running, a publish under way)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import aio_pika


class Busy:
    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()


async def settle(action: Awaitable[None]) -> None:
    """Ack or reject, ignoring a channel that closed meanwhile (the broker requeues then)."""
    with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
        await action
