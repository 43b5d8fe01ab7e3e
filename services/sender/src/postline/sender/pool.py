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
* a sender never holds more sessions for one speed key than it has deliveries for that key in
  hand (``demand``): the scheduler's connection limit counts deliveries in flight across all
  senders, and a destination counts open connections, so an idle session kept "just in case"
  by each of several senders would exceed the limit. A session is kept for reuse only while
  another delivery of the same key is in this sender; when the last one finishes, the idle
  sessions of its key are QUIT *before* its result is published, so a slot the scheduler then
  grants to another sender never overlaps the old connection. Under a backlog (the prefetch
  window holds several deliveries per key) sessions carry many messages; for a throttled
  destination each delivery may need its own session, which is what the limit asks for;
* at most the rule's ``connections`` sessions per key in any case: at that count an idle one
  of the same key (to another host or from another source IP) is closed first.

Sessions are not shared between speed keys, so a destination's connection count never
includes sessions opened for another destination's deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

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
        self._demand: Counter[str] = Counter()  # deliveries in hand per speed key
        self._closing: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self.opened = 0  # sessions opened over the pool's life (tests, metrics)

    @contextlib.asynccontextmanager
    async def demand(self, key: str) -> AsyncIterator[None]:
        """Hold around a delivery's use of the pool: while it runs, its key may keep sessions;
        on exit, sessions beyond the deliveries still in hand are QUIT and awaited."""
        self._demand[key] += 1
        try:
            yield
        finally:
            self._demand[key] -= 1
            if self._demand[key] <= 0:
                del self._demand[key]
            closing = self._trim(key)
            if closing:
                await asyncio.wait(closing)

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
        # Idle sessions of this key to other endpoints are surplus once they are as many as
        # the deliveries in hand (this one included, not yet holding a session).
        while self._open[key] >= max(self._demand[key], 1) and self._evict_idle(key):
            pass
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
        # Awaited: the connection is gone before the delivery's result frees its slot.
        await self._close(key, session)

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

    def _close(self, key: str, session: SmtpSession) -> asyncio.Task[None]:
        self._count(key, session.endpoint, -1)
        task = asyncio.create_task(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return task

    def _trim(self, key: str) -> list[asyncio.Task[None]]:
        """Close idle sessions of ``key`` beyond the deliveries in hand; the closes started."""
        closing = []
        while self._open[key] > self._demand[key]:
            task = self._evict_idle(key)
            if task is None:
                break
            closing.append(task)
        return closing

    def _evict_idle(self, key: str) -> asyncio.Task[None] | None:
        oldest: tuple[Endpoint, SmtpSession] | None = None
        for (idle_key, endpoint), sessions in self._idle.items():
            if idle_key == key and sessions:
                candidate = sessions[0]
                if oldest is None or candidate.last_used < oldest[1].last_used:
                    oldest = (endpoint, candidate)
        if oldest is not None:
            endpoint, session = oldest
            self._idle[(key, endpoint)].remove(session)
            logger.debug("%s: closing an idle session to %s", key, endpoint)
            return self._close(key, session)
        return None

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
