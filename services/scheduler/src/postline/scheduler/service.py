"""The scheduler assembled from its parts; ``python -m postline.scheduler`` runs one.

Every replica runs the same: it offers to own every shard (the broker gives each shard to one
replica, the others are hot standbys), reads the paused domains and the suppression list, and
serves the admin API. Tests build one (or two) with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from postline.common.broker import Broker, Topology
from postline.common.health import Readiness
from postline.common.ids import new_id
from postline.common.policy import PolicySource
from postline.common.runtime import within
from postline.scheduler.admin import SchedulerAdmin, serve_admin
from postline.scheduler.handlers import Scheduler
from postline.scheduler.mx import MxCache
from postline.scheduler.ownership import Ownership
from postline.scheduler.pauses import PausedDomains
from postline.scheduler.settings import SchedulerSettings
from postline.scheduler.shard import ShardRuntime
from postline.scheduler.stats import Snapshots
from postline.scheduler.suppressions import SuppressionList, load_forever
from postline.v1 import events_pb2

logger = logging.getLogger(__name__)


class SchedulerService:
    def __init__(
        self, settings: SchedulerSettings, policy: PolicySource, clock: Callable[[], float]
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.replica = new_id()[-12:]
        self.broker = Broker(settings.amqp_url, Topology(settings.shards, settings.queue_type))
        self.suppressions = SuppressionList(clock)
        self.pauses = PausedDomains(clock)
        self.snapshots = Snapshots(clock)
        self.mx = MxCache(clock, settings.dns_nameservers(), settings.dns_timeout)
        self.scheduler = Scheduler(
            self.broker,
            policy,
            clock,
            shards=settings.shards,
            suppressions=self.suppressions,
            pauses=self.pauses,
            mx=self.mx,
            hold_spread=settings.hold_release_spread,
            pause_recheck=settings.pause_recheck,
        )
        self.ownership = Ownership(settings.amqp_url, self.broker, settings.shards, self._runtime)
        self.admin = SchedulerAdmin(
            policy=policy,
            broker=self.broker,
            ownership=self.ownership,
            snapshots=self.snapshots,
            pauses=self.pauses,
            suppressions=self.suppressions,
            mx=self.mx,
            clock=clock,
        )
        self.readiness = Readiness()
        self.readiness.add("rabbitmq", lambda: self.broker.problem)
        self.readiness.add("shards", self._shards_problem)
        self.grpc: grpc.aio.Server | None = None
        self.grpc_port = 0
        self._stop = asyncio.Event()
        self._loader: asyncio.Task[None] | None = None
        self._owning: asyncio.Task[None] | None = None

    def _runtime(
        self,
        shard: int,
        connection: AbstractConnection,
        channel: AbstractChannel,
        token: AbstractIncomingMessage,
    ) -> ShardRuntime:
        runtime = ShardRuntime(
            shard,
            connection,
            channel,
            token,
            broker=self.broker,
            pipeline=self.scheduler,
            pauses=self.pauses,
            settings=self.settings.runtime(),
            clock=self.clock,
            replica=self.replica,
        )
        self.pauses.listen(runtime.on_pause_change)
        return runtime

    @property
    def ready(self) -> bool:
        return self.readiness()

    def _shards_problem(self) -> str | None:
        if self._owning is None:
            return "not offering to own shards yet"
        if not self.ownership.connected.is_set():
            return "shard connection to RabbitMQ lost; reconnecting"
        return None

    async def start(self, *, until: asyncio.Event | None = None) -> bool:
        """Connect (waiting for RabbitMQ until ``until`` is set, if given) and start taking
        shards; False if stopped before RabbitMQ could be reached."""
        if not await self.broker.connect(until=until):
            return False
        await self.broker.consume_queue(
            self.broker.topology.declare_suppression_queue,
            events_pb2.SuppressionChange,
            self.suppressions.on_change,
        )
        self._load_suppressions()
        # This replica's suppression queue went with the old connection: changes published
        # meanwhile never reached it, so the list is read again.
        self.broker.on_reconnect(self._reload_suppressions)
        await self.pauses.start(self.broker)
        await self.snapshots.start(self.broker)
        # Pauses are known before any shard is taken: nothing paused slips out at start.
        await within(self.pauses.caught_up.wait(), 60)
        self._owning = asyncio.create_task(self.ownership.run(self._stop))
        self.grpc, self.grpc_port = await serve_admin(self.settings.grpc_listen, self.admin)
        logger.info("scheduler %s offering to own %d shards", self.replica, self.settings.shards)
        return True

    def _load_suppressions(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
        self._loader = asyncio.create_task(
            load_forever(self.suppressions, self.settings.bounce_grpc)
        )

    async def _reload_suppressions(self) -> None:
        logger.info("reconnected to RabbitMQ: reading the suppression list again")
        self._load_suppressions()

    async def stop(self) -> None:
        """Hand the owned shards back cleanly, then close."""
        self._stop.set()
        if self._owning is not None:
            await self._owning
        if self._loader is not None:
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
        if self.grpc is not None:
            await self.grpc.stop(grace=2)
        await self.broker.close()
