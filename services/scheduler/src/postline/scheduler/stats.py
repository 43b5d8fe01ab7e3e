"""Queue statistics of the whole deployment, answerable by any replica.

Each shard's owner publishes a ``ShardSnapshot`` every second; every replica keeps the latest
per shard (its own shards it reads live). A shard with no fresh snapshot has no owner right
now (a failover in progress) and is reported as unknown rather than as idle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from postline.common.broker import Broker
from postline.common.broker.consumer import MessageMeta
from postline.scheduler import queues
from postline.v1 import scheduler_pb2

logger = logging.getLogger(__name__)

FRESH_SECONDS = queues.STATS_TTL_MS / 1000


class Snapshots:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._latest: dict[int, tuple[float, scheduler_pb2.ShardSnapshot]] = {}

    async def start(self, broker: Broker) -> None:
        await broker.consume_queue(
            queues.declare_stats, scheduler_pb2.ShardSnapshot, self._on_snapshot, prefetch=100
        )

    async def _on_snapshot(self, snapshot: scheduler_pb2.ShardSnapshot, meta: MessageMeta) -> None:
        self._latest[snapshot.shard] = (self.clock(), snapshot)

    def fresh(self, shard: int) -> scheduler_pb2.ShardSnapshot | None:
        found = self._latest.get(shard)
        if found is None or self.clock() - found[0] > FRESH_SECONDS:
            return None
        return found[1]


def queue_stats(
    shards: int,
    live: dict[int, scheduler_pb2.ShardSnapshot],
    snapshots: Snapshots,
    domain: str = "",
) -> scheduler_pb2.QueueStatsResponse:
    """Merge live shards (this replica's) with the others' latest snapshots."""
    response = scheduler_pb2.QueueStatsResponse(owned_shards=sorted(live))
    for shard in range(shards):
        snapshot = live.get(shard) or snapshots.fresh(shard)
        if snapshot is None:
            response.unknown_shards.append(shard)
            continue
        response.domains.extend(_matching(snapshot.domains, domain.lower()))
    return response


def _matching(
    rows: Iterable[scheduler_pb2.DomainStats], domain: str
) -> list[scheduler_pb2.DomainStats]:
    if not domain:
        return list(rows)
    return [r for r in rows if r.domain == domain or domain in r.domains]
