"""SMTP sessions kept open between deliveries, so one session carries several messages.

Sessions are pooled by (speed key, endpoint): the speed key is what the destination's limits
count (``domain:<d>`` or ``group:<g>``, see :class:`postline.common.policy.SpeedLimit`), the
endpoint is (address, port, source IP, TLS mode, host name). So:

* a session is used by one delivery at a time (it is checked out of the pool), and goes back
  only in a clean state: RSET after a transaction that was rejected half-way (after the reply
  to the final dot the server has reset itself); a session the server dropped while idle is
  noticed at its next MAIL and replaced without failing the delivery;
* it carries at most the speed rule's ``messages_per_connection`` messages, then QUITs;
* it is closed after ``idle_timeout`` without use;
* a sender never holds more sessions for one speed key than the rule's ``connections``: when
  a delivery needs a new session at that count, an idle one of the same key (to another host
  or from another source IP) is closed first. Sessions in use are never more than the
  deliveries in flight, which the scheduler already keeps within its connection grant.

Sessions are not shared between speed keys, so a destination's connection count never
includes sessions opened for another destination's deliveries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

from postline.sender.smtp import Endpoint, SmtpSession

logger = logging.getLogger(__name__)

Opener = Callable[[Endpoint], Awaitable[SmtpSession]]


class SessionPool:
    def __init__(self, opener: Opener, *, idle_timeout: float) -> None:
        self._opener = opener
        self.idle_timeout = idle_timeout
        self._idle: dict[tuple[str, Endpoint], list[SmtpSession]] = defaultdict(list)
        self._open: Counter[str] = Counter()  # sessions per speed key, in use or idle
        self._by_source: Counter[tuple[str, str]] = Counter()  # per (speed key, source IP)
        self._closing: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self.opened = 0  # sessions opened over the pool's life (tests, metrics)

    async def acquire(
        self, key: str, endpoint: Endpoint, *, max_sessions: int
    ) -> tuple[SmtpSession, bool]:
        """A session for ``endpoint`` (and whether it carried messages before). Raises
        :class:`postline.sender.smtp.SessionFailed` when a new one cannot be opened."""
        self._start_reaper()
        idle = self._idle.get((key, endpoint))
        while idle:
            session = idle.pop()  # the most recently used: the least likely to have timed out
            if session.usable:
                return session, True
            self._close(key, session)
        if self._open[key] >= max_sessions:
            self._evict_idle(key)
        self._count(key, endpoint, +1)  # counted while connecting too
        try:
            session = await self._opener(endpoint)
        except BaseException:
            self._count(key, endpoint, -1)
            raise
        self.opened += 1
        return session, False

    async def release(self, key: str, session: SmtpSession, *, max_messages: int) -> None:
        """Back to the pool for reuse, or closed when it is spent or broken."""
        reusable = not self._closed and session.messages < max_messages
        if reusable and await session.reset() and not self._closed:
            self._idle[(key, session.endpoint)].append(session)
            return
        self._close(key, session)

    def discard(self, key: str, session: SmtpSession) -> None:
        """Close a session that must not be reused (e.g. found stale)."""
        self._close(key, session)

    def idle_sessions(self, key: str, endpoint: Endpoint) -> int:
        return len(self._idle.get((key, endpoint), ()))

    def open_sessions(self, key: str, source_ip: str | None = None) -> int:
        if source_ip is None:
            return self._open[key]
        return self._by_source[(key, source_ip)]

    async def close(self) -> None:
        """Close every idle session (QUIT) and wait for closes under way."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        for (key, _), sessions in list(self._idle.items()):
            while sessions:
                self._close(key, sessions.pop())
        self._idle.clear()
        if self._closing:
            await asyncio.wait(self._closing)

    # -- internals -------------------------------------------------------------------------

    def _count(self, key: str, endpoint: Endpoint, delta: int) -> None:
        self._open[key] += delta
        self._by_source[(key, endpoint.source_ip)] += delta
        if self._open[key] <= 0:
            del self._open[key]
        if self._by_source[(key, endpoint.source_ip)] <= 0:
            del self._by_source[(key, endpoint.source_ip)]

    def _close(self, key: str, session: SmtpSession) -> None:
        self._count(key, session.endpoint, -1)
        task = asyncio.create_task(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _evict_idle(self, key: str) -> None:
        oldest: tuple[Endpoint, SmtpSession] | None = None
        for (idle_key, endpoint), sessions in self._idle.items():
            if idle_key == key and sessions:
                candidate = sessions[0]
                if oldest is None or candidate.last_used < oldest[1].last_used:
                    oldest = (endpoint, candidate)
        if oldest is not None:
            endpoint, session = oldest
            self._idle[(key, endpoint)].remove(session)
            logger.debug("%s: closing an idle session to %s to stay within %s", key, endpoint, key)
            self._close(key, session)

    def _start_reaper(self) -> None:
        if self._reaper is None and not self._closed:
            self._reaper = asyncio.create_task(self._reap())

    async def _reap(self) -> None:
        every = max(0.1, min(self.idle_timeout / 2, 5.0))
        while True:
            await asyncio.sleep(every)
            deadline = time.monotonic() - self.idle_timeout
            for (key, _), sessions in list(self._idle.items()):
                for session in [s for s in sessions if s.last_used <= deadline or not s.usable]:
                    sessions.remove(session)
                    self._close(key, session)
            for pair in [pair for pair, sessions in self._idle.items() if not sessions]:
                del self._idle[pair]
