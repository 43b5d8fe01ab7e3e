"""Whether ClickHouse takes this service's writes right now, for readiness.

A store reports the outcome of each write; while the last one failed the service is not
ready, and says why. Reads do not count: a full disk still answers queries. A service with
nothing to write would not notice a ClickHouse that went away or filled up, so ``watch`` runs
a probe (:func:`probe`: reachable, and room on its disks) when writes have been quiet for a
while, and every second while they fail, so readiness also comes back without a write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from clickhouse_connect.driver.client import Client

logger = logging.getLogger(__name__)

T = TypeVar("T")

PING_AFTER_SECONDS = 10.0
# An insert reserves its parts' size first (1 MiB at least): less room than this is full.
MIN_FREE_BYTES = 16 * 1024 * 1024


class DiskFull(Exception):
    """A ClickHouse disk has no room for inserts."""


def probe(client: Client) -> None:
    """Raise unless ClickHouse answers and each of its disks has room for inserts."""
    rows = client.query("SELECT name, unreserved_space FROM system.disks").result_rows
    full = [f"{name} ({int(free)} bytes free)" for name, free in rows if free < MIN_FREE_BYTES]
    if full:
        raise DiskFull(f"no room for inserts on disk {', '.join(full)}")


class ClickHouseHealth:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.failures = 0  # calls failed in a row
        self.error = ""
        self.last_outcome = clock()

    def succeeded(self) -> None:
        if self.failures:
            logger.info("ClickHouse answers again after %d failed calls", self.failures)
        self.failures = 0
        self.error = ""
        self.last_outcome = self.clock()

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        # The first line is enough: ClickHouse appends its whole stack trace.
        self.error = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        self.last_outcome = self.clock()

    async def recorded(self, call: Awaitable[T]) -> T:
        """Await a write (or the probe), recording its outcome."""
        try:
            result = await call
        except Exception as exc:
            self.failed(exc)
            raise
        self.succeeded()
        return result

    def problem(self) -> str | None:
        if not self.failures:
            return None
        return f"failing ({self.failures} in a row): {self.error}"

    async def watch(self, ping: Callable[[], Awaitable[object]], every: float = 1.0) -> None:
        """Ping ClickHouse (``ping`` reports its own outcome) whenever nothing else did for
        ``PING_AFTER_SECONDS``, or while it is failing; runs until cancelled."""
        while True:
            await asyncio.sleep(every)
            quiet = self.clock() - self.last_outcome >= PING_AFTER_SECONDS
            if quiet or (self.failures and self.clock() - self.last_outcome >= every):
                try:
                    await ping()
                except Exception:  # recorded by the store; the next round tries again
                    logger.debug("ClickHouse ping failed", exc_info=True)
