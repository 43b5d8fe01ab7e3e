"""A shard's speed keys (*gates*): the grants each has in flight and the deliveries waiting
in memory for one.

A delivery that is ready asks its key's gate. A grant takes a slot (``SpeedState``); a result
frees it and *pumps* the gate: the waiting delivery of highest priority (then first come) is
granted next, as long as the key's connections, interval and rate allow, else a timer pumps
again when they will.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aio_pika.abc import AbstractQueue

from postline.common.ids import new_id
from postline.common.policy import SpeedLimit
from postline.scheduler import metrics
from postline.scheduler.busy import Busy
from postline.scheduler.pauses import PausedDomains
from postline.scheduler.speed import SpeedState


@dataclass(order=True)
class Waiter:
    rank: tuple[int, int]  # (-priority, arrival): highest priority first, then first come
    future: asyncio.Future[str | None] = field(compare=False)


@dataclass
class Backlog:
    """A speed key's backlog queue (see ``backlogs.py``)."""

    name: str
    queue: AbstractQueue
    ready: int  # an estimate of what waits in the queue (for stats and idle deletion)
    last_used: float
    consumer_tag: str | None = None
    prefetch: int = 0  # the consumer's, in broker messages (a message may carry several)
    publishing: Busy = field(default_factory=Busy)
    closing: bool = False


@dataclass
class Gate:
    """One speed key of one server (speed rules are per server)."""

    server: str
    key: str
    limit: SpeedLimit | None
    last_active: float
    state: SpeedState = field(default_factory=SpeedState)
    waiters: list[Waiter] = field(default_factory=list)
    backlog: Backlog | None = None
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    domains: dict[str, float] = field(default_factory=dict)  # domain -> last seen

    @property
    def name(self) -> str:
        return gate_name(self.server, self.key)

    @property
    def domain(self) -> str | None:
        """The domain of a per-domain key (None for a group)."""
        return self.key.removeprefix("domain:") if self.key.startswith("domain:") else None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def set_limit(self, limit: SpeedLimit, claimed_at: float) -> None:
        if self.limit is None:
            # The previous owner may have granted just before it died.
            self.state.take_over(limit, claimed_at)
        self.limit = limit


def gate_name(server: str, speed_key: str) -> str:
    return f"{server}/{speed_key}"


async def granted(future: asyncio.Future[str | None], timeout: float) -> str | None:
    """The grant id a waiting delivery gets (``Gates.wait``), or None when it was let go or
    ``timeout`` passed first: then it goes back to its backlog queue. One timer that lets it
    go, not ``asyncio.wait`` (a set, a waiter future and a callback more per delivery)."""
    if not future.done():
        timer = asyncio.get_running_loop().call_later(timeout, _give_up, future)
        try:
            await future
        finally:
            timer.cancel()
    return future.result()


def _give_up(future: asyncio.Future[str | None]) -> None:
    if not future.done():
        future.set_result(None)  # as ``let_go`` does: ``pump`` passes it by


def spacing(limit: SpeedLimit | None) -> float:
    """The least time between two grants of a key (its interval or rate)."""
    if limit is None:
        return 0.0
    gap = limit.interval.total_seconds()
    if limit.rate is not None:
        gap = max(gap, limit.rate.spacing)
    return gap


class Gates:
    """The gates of one shard, by name (``server/speed key``)."""

    def __init__(
        self, clock: Callable[[], float], pauses: PausedDomains, claimed_at: float
    ) -> None:
        self.clock = clock
        self.pauses = pauses
        self.claimed_at = claimed_at
        self.by_name: dict[str, Gate] = {}
        self.stopping = False
        self._seq = itertools.count()

    def __iter__(self) -> Iterator[Gate]:
        return iter(list(self.by_name.values()))

    def __len__(self) -> int:
        return len(self.by_name)

    def values(self) -> list[Gate]:
        return list(self.by_name.values())

    def get(self, server: str, speed_key: str) -> Gate | None:
        return self.by_name.get(gate_name(server, speed_key))

    def known(self, server: str, speed_key: str) -> Gate:
        """The gate of a key, made without a limit if new (a recovered lease or backlog: the
        limit is learnt from the key's next delivery)."""
        name = gate_name(server, speed_key)
        gate = self.by_name.get(name)
        if gate is None:
            gate = self.by_name[name] = Gate(server, speed_key, None, self.clock())
        return gate

    def gate(self, server: str, limit: SpeedLimit) -> Gate:
        """The gate of a key with its current limit, marked active now."""
        gate = self.known(server, limit.key)
        gate.set_limit(limit, self.claimed_at)
        gate.last_active = self.clock()
        return gate

    def forget(self, gate: Gate) -> None:
        del self.by_name[gate.name]

    def in_flight(self) -> int:
        return sum(len(g.state.in_flight) for g in self.by_name.values())

    def can_grant_now(self, gate: Gate, limit: SpeedLimit) -> bool:
        """Whether a new delivery may go at once: nothing waits before it and a slot is free."""
        return (
            gate.backlog is None and not gate.waiters and gate.state.wait(limit, self.clock()) == 0
        )

    def grant(self, gate: Gate) -> str:
        assert gate.limit is not None
        grant_id = new_id()
        gate.state.grant(grant_id, gate.limit, self.clock())
        metrics.IN_FLIGHT.inc()
        return grant_id

    def free(self, gate: Gate, grant_id: str) -> None:
        if gate.state.release(grant_id):
            metrics.IN_FLIGHT.dec()
        self.pump(gate)

    def wait(self, gate: Gate, priority: int) -> asyncio.Future[str | None]:
        """Queue for the key's next grant: the future's result is the grant id, or None when
        the delivery is to go back to its backlog queue."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        heapq.heappush(gate.waiters, Waiter((-priority, next(self._seq)), future))
        self.pump(gate)
        return future

    def pump(self, gate: Gate) -> None:
        """Grant waiting deliveries while the key allows; else wake up when it will."""
        gate.cancel_timer()
        if self.stopping or gate.limit is None:
            return
        while gate.waiters:
            if gate.waiters[0].future.done():  # timed out or let go
                heapq.heappop(gate.waiters)
                continue
            if gate.domain is not None and self.pauses.is_paused(gate.domain):
                return
            wait = gate.state.wait(gate.limit, self.clock())
            if wait is None:
                return  # every connection in use: a result pumps again
            if wait > 0:
                gate.timer = asyncio.get_running_loop().call_later(wait, self.pump, gate)
                return
            waiter = heapq.heappop(gate.waiters)
            waiter.future.set_result(self.grant(gate))

    def let_go(self, gate: Gate) -> None:
        """Give the key's waiting deliveries back to its backlog queue."""
        gate.cancel_timer()
        for waiter in gate.waiters:
            if not waiter.future.done():
                waiter.future.set_result(None)
        gate.waiters.clear()

    def lost(self) -> None:
        """The shard is gone: cancel every timer and waiter, forget every gate."""
        self.stopping = True
        for gate in self.by_name.values():
            gate.cancel_timer()
            for waiter in gate.waiters:
                if not waiter.future.done():
                    waiter.future.cancel()
        metrics.IN_FLIGHT.dec(self.in_flight())
        metrics.BACKLOG_QUEUES.dec(sum(1 for g in self.by_name.values() if g.backlog))
        self.by_name.clear()
