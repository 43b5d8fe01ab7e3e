"""Paused domains, the same on every replica and across restarts.

A pause or resume is a ``DomainPause`` appended to the ``scheduler.control`` stream; every
replica reads the stream from its start, so all of them hold the same set in the same order,
a replica started later catches up, and a pause outlives every restart. A replica knows it has
read the past when its own start-up marker comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from postline.common.broker import Broker
from postline.common.broker.consumer import MessageMeta
from postline.common.ids import new_id
from postline.common.runtime import within
from postline.common.timeutil import to_timestamp
from postline.scheduler import queues
from postline.v1 import scheduler_pb2

logger = logging.getLogger(__name__)

Listener = Callable[[str, bool], None]


class PausedDomains:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._paused: dict[str, float] = {}  # domain -> since
        self._listeners: list[Listener] = []
        self._marker = new_id()
        self._changed = asyncio.Condition()
        self.caught_up = asyncio.Event()

    def is_paused(self, domain: str) -> bool:
        return domain.lower() in self._paused

    @property
    def domains(self) -> dict[str, float]:
        return dict(self._paused)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def apply(self, change: scheduler_pb2.DomainPause) -> None:
        domain = change.domain.lower()
        was = domain in self._paused
        if change.paused:
            self._paused.setdefault(domain, change.at.ToNanoseconds() / 1e9 or self.clock())
        else:
            self._paused.pop(domain, None)
        if was != change.paused:
            logger.info("%s %s", domain, "paused" if change.paused else "resumed")
            for listener in list(self._listeners):
                listener(domain, change.paused)

    async def start(self, broker: Broker) -> None:
        """Read the stream from its start and keep following it."""
        # Streams need a prefetch; the broker's watchdog makes readiness follow the stream.
        await broker.consume_queue(
            queues.declare_control,
            scheduler_pb2.DomainPause,
            self._on_message,
            prefetch=500,
            arguments=_FIRST,
        )
        await broker.publish(queues.CONTROL_KEY, scheduler_pb2.DomainPause(marker=self._marker))

    async def _on_message(self, change: scheduler_pb2.DomainPause, meta: MessageMeta) -> None:
        if not change.domain:
            if change.marker == self._marker:
                self.caught_up.set()
                logger.info("paused domains read: %s", ", ".join(self._paused) or "none")
        else:
            self.apply(change)
        async with self._changed:
            self._changed.notify_all()

    async def set(self, broker: Broker, domain: str, paused: bool, timeout: float = 10.0) -> bool:
        """Publish a pause or resume; return once this replica applied it (every replica
        applies it from the same stream)."""
        domain = domain.lower()
        change = scheduler_pb2.DomainPause(
            domain=domain, paused=paused, at=to_timestamp(self.clock())
        )
        await broker.publish(queues.CONTROL_KEY, change)
        async with self._changed:
            await within(self._changed.wait_for(lambda: self.is_paused(domain) == paused), timeout)
        return self.is_paused(domain)


# Consumers of a stream say where to start reading; "first" is its oldest message.
_FIRST = {"x-stream-offset": "first"}
