"""Slowing down password guessing: failed authentications per account and per client IP.

Every place that checks a credential (SMTP AUTH, the send API, the reports API, the console
login) asks :meth:`AuthThrottle.retry_after` before checking and reports each failure. The
first ``free_failures`` failures of a key cost nothing (people mistype); after that each
failure locks the key for ``base_delay`` doubled per further failure, up to ``max_delay``.
While a key is locked the credential is not even checked, so a guesser gets one try per lock
whatever its speed. A key that has not failed for ``forget_after`` starts afresh, and a
success clears the account's count (not the IP's: one valid account must not reset the
counter of an address that guesses others).

The state is per process (per replica): N replicas let a guesser try N times as fast, which
the exponential lock still keeps to a handful of tries an hour. Callers answer in their own
protocol's terms (``454 4.7.0`` on SMTP, ``429`` with ``Retry-After`` over HTTP) and the
module logs each lock once, naming the key and never the secret.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Failures:
    count: int
    last: float  # when the last failure happened
    locked_until: float


class AuthThrottle:
    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 900.0,
        forget_after: float = 900.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, *keys: str) -> float:
        """Seconds before any of ``keys`` may try again; 0 when all may try now."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            entry = self._current(key, now)
            if entry is not None:
                wait = max(wait, entry.locked_until - now)
        return wait

    def failed(self, *keys: str) -> float:
        """Count a failed attempt against each key; returns the wait now in force."""
        now = self._clock()
        for key in keys:
            entry = self._current(key, now) or _Failures(0, now, now)
            entry.count += 1
            entry.last = now
            over = entry.count - self.free_failures
            if over > 0:
                delay = min(self.max_delay, self.base_delay * 2 ** min(over - 1, 62))
                entry.locked_until = now + delay
                logger.warning(
                    "%s throttled for %.0fs after %s failed authentications",
                    key,
                    math.ceil(delay),
                    entry.count,
                )
            self._keys[key] = entry
            self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return self.retry_after(*keys)

    def succeeded(self, key: str) -> None:
        """A correct credential for ``key`` (the account): its count starts afresh."""
        self._keys.pop(key, None)

    def _current(self, key: str, now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is None:
            return None
        if now - entry.last >= self.forget_after and now >= entry.locked_until:
            del self._keys[key]
            return None
        return entry


def account_key(name: str) -> str:
    return f"account:{name.lower()}"


def ip_key(ip: str) -> str:
    return f"ip:{ip}"
