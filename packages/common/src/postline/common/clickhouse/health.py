"""Whether ClickHouse takes this service's work right now, for readiness.

A store reports the outcome of each call that matters (writes, and lookups a handler needs);
while the last one failed the service is not ready, and says why. A service with nothing to
write would not notice a ClickHouse that went away, so ``watch`` pings it when it has been
quiet for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

PING_AFTER_SECONDS = 10.0


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
