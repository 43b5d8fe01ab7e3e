"""SMTP sessions kept open between deliveries, so one session carries several messages.

Sessions are pooled by (speed key, endpoint): the speed key is what the destination's limits
count (``domain:<d>`` or ``group:<g>``, see :class:`postline.common.policy.SpeedLimit`), the
endpoint is (address, port, source IP, TLS mode, host name). So:

* a session is used by one delivery at a time (it is checked out of the pool), and goes back
  only in a clean state: RSET after a transaction that was rejected half-way (after the reply
  to the final dot the server has reset itself); a session the server dropped while idle is
  noticed at its next MAIL and replaced without failing the delivery;
* it carries at most the speed rule's ``messages_per_connection`` messages, then QUITs;
* it is closed after ``idle_timeout`` without use.

**A destination's connection limit holds over every sender process.** The scheduler keeps the
deliveries in flight within a key's ``connections``, but a session kept idle for reuse is a
connection too, and each sender keeps its own. So each of the ``n`` senders (``share()``,
:mod:`.membership`) holds at most ``connections // n`` sessions per key, in use, idle or
closing (a session counts until its QUIT is done): a delivery that finds none free waits
for one in its sender (it already holds its grant) rather than opening one more. When a key
allows fewer connections than there are senders (``connections // n == 0``), no session is
kept: each delivery opens its own and closes it before its result frees its grant, so the
destination never sees more connections than the scheduler's grants. While the sender does
not know its share (``share()`` is None: joining, or cut off from RabbitMQ) deliveries wait.
A session is closed (QUIT done) before :meth:`SessionPool.release` returns, so before the
result that frees its grant is published.

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
Share = Callable[[], int | None]  # how many senders share each limit; None: not known yet


def alone() -> int:
    return 1


class SessionPool:
    def __init__(self, opener: Opener, *, idle_timeout: float, share: Share = alone) -> None:
        self._opener = opener
        self.idle_timeout = idle_timeout
        self._share = share
        self._idle: dict[tuple[str, Endpoint], list[SmtpSession]] = defaultdict(list)
        self._open: Counter[str] = Counter()  # sessions per speed key: in use, idle, closing
        self._by_source: Counter[tuple[str, str]] = Counter()  # per (speed key, source IP)
        self._quitting: Counter[str] = Counter()  # of ``_open``, those closing
        self._limits: dict[str, int] = {}  # speed key -> its connections, as last seen
        self._waiters: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._closing: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self.opened = 0  # sessions opened over the pool's life (tests, metrics)
        self.waited = 0  # deliveries that waited for a session of their key (tests, metrics)

    def quota(self, key: str, connections: int) -> int | None:
        """The sessions this sender may hold for ``key`` (0: none kept, one per delivery)."""
        senders = self._share()
        if senders is None:
            return None
        return connections // max(1, senders)

    async def acquire(
        self, key: str, endpoint: Endpoint, *, max_sessions: int
    ) -> tuple[SmtpSession, bool]:
        """A session for ``endpoint`` (and whether it carried messages before). Raises
        :class:`postline.sender.smtp.SessionFailed` when a new one cannot be opened."""
        self._start_reaper()
        self._limits[key] = max_sessions
        waited = False
        while True:
            idle = self._idle.get((key, endpoint))
            while idle:
                session = idle.pop()  # the most recently used: the least likely to have timed out
                if session.usable:
                    return session, True
                self._close(key, session)
            quota = self.quota(key, max_sessions)
            if quota == 0:
                break  # one session per delivery: the scheduler's grants bound them
            if quota is not None:
                if self._open[key] - self._quitting[key] >= quota:
                    self._evict_idle(key)
                if self._open[key] < quota:
                    break
            if not waited:
                waited = True
                self.waited += 1
            await self._wait(key)
        self._count(key, endpoint, +1)  # counted while connecting too
        try:
            session = await self._opener(endpoint)
        except BaseException:
            self._count(key, endpoint, -1)
            self._wake(key)
            raise
        self.opened += 1
        return session, False

    async def release(self, key: str, session: SmtpSession, *, max_messages: int) -> None:
        """Back to the pool for reuse, or closed (QUIT done) when it is spent, broken or over
        this sender's share of the key's connections."""
        reusable = not self._closed and session.messages < max_messages
        if reusable and self._within_quota(key) and await session.reset() and not self._closed:
            if self._within_quota(key):  # the share may have shrunk during RSET
                self._idle[(key, session.endpoint)].append(session)
                self._wake(key)
                return
        await self._close_now(key, session)

    def discard(self, key: str, session: SmtpSession) -> None:
        """Close a session that must not be reused (e.g. found stale)."""
        self._close(key, session)

    def idle_sessions(self, key: str, endpoint: Endpoint) -> int:
        return len(self._idle.get((key, endpoint), ()))

    def open_sessions(self, key: str, source_ip: str | None = None) -> int:
        if source_ip is None:
            return self._open[key]
        return self._by_source[(key, source_ip)]

    def reshare(self) -> None:
        """The number of senders changed: close idle sessions over the new share at once
        (those in use close when released) and let waiting deliveries look again."""
        for key in list(self._open):
            quota = self.quota(key, self._limits.get(key, 0))
            while self._open[key] - self._quitting[key] > (quota or 0) and self._evict_idle(key):
                pass
        for key in list(self._waiters):
            self._wake(key)

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

    def _within_quota(self, key: str) -> bool:
        quota = self.quota(key, self._limits.get(key, 0))
        return quota is not None and self._open[key] <= quota

    def _count(self, key: str, endpoint: Endpoint, delta: int) -> None:
        self._open[key] += delta
        self._by_source[(key, endpoint.source_ip)] += delta
        if self._open[key] <= 0:
            del self._open[key]
        if self._by_source[(key, endpoint.source_ip)] <= 0:
            del self._by_source[(key, endpoint.source_ip)]

    def _close(self, key: str, session: SmtpSession) -> None:
        self._quitting[key] += 1
        task = asyncio.create_task(self._quit(key, session))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_now(self, key: str, session: SmtpSession) -> None:
        self._quitting[key] += 1
        await self._quit(key, session)

    async def _quit(self, key: str, session: SmtpSession) -> None:
        # Counted until the QUIT is done: the destination still sees the connection until then.
        try:
            await session.close()
        finally:
            self._quitting[key] -= 1
            if self._quitting[key] <= 0:
                del self._quitting[key]
            self._count(key, session.endpoint, -1)
            self._wake(key)

    async def _wait(self, key: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[key].append(future)
        try:
            await future
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None and future in waiters:
                waiters.remove(future)
            if waiters == []:
                del self._waiters[key]

    def _wake(self, key: str) -> None:
        for future in self._waiters.pop(key, []):
            if not future.done():
                future.set_result(None)

    def _evict_idle(self, key: str) -> bool:
        oldest: tuple[Endpoint, SmtpSession] | None = None
        for (idle_key, endpoint), sessions in self._idle.items():
            if idle_key == key and sessions:
                candidate = sessions[0]
                if oldest is None or candidate.last_used < oldest[1].last_used:
                    oldest = (endpoint, candidate)
        if oldest is None:
            return False
        endpoint, session = oldest
        self._idle[(key, endpoint)].remove(session)
        logger.debug("%s: closing an idle session to %s to stay within %s", key, endpoint, key)
        self._close(key, session)
        return True

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
