"""What a shard's owner reports about it each second (``ShardSnapshot``, for the admin API):
per speed key its backlog, grants in flight, limits and next release, and the deliveries
held by prohibited hours that this owner saw."""

from __future__ import annotations

from postline.common.policy.units import format_duration
from postline.common.timeutil import to_timestamp
from postline.scheduler.gates import Gates
from postline.scheduler.pauses import PausedDomains
from postline.v1 import scheduler_pb2


class HeldDeliveries:
    """Deliveries parked by prohibited hours: domain -> delivery id -> end of the hold."""

    def __init__(self) -> None:
        self.by_domain: dict[str, dict[str, float]] = {}

    def held(self, domain: str, delivery_id: str, until: float) -> None:
        self.by_domain.setdefault(domain, {})[delivery_id] = until

    def released(self, domain: str, delivery_id: str) -> None:
        held = self.by_domain.get(domain)
        if held is not None:
            held.pop(delivery_id, None)
            if not held:
                del self.by_domain[domain]

    def describe(self, stats: scheduler_pb2.DomainStats, domain: str) -> None:
        held = self.by_domain.get(domain)
        if held:
            stats.held = len(held)
            stats.held_until.CopyFrom(to_timestamp(min(held.values())))


def snapshot(
    number: int,
    replica: str,
    gates: Gates,
    held: HeldDeliveries,
    pauses: PausedDomains,
    now: float,
) -> scheduler_pb2.ShardSnapshot:
    result = scheduler_pb2.ShardSnapshot(shard=number, owner=replica, at=to_timestamp(now))
    seen: set[str] = set()
    for gate in gates:
        waiting = sum(1 for w in gate.waiters if not w.future.done())
        backlog = max(0, gate.backlog.ready if gate.backlog else 0) + waiting
        if not backlog and not gate.state.in_flight:
            continue
        stats = result.domains.add(
            domain=gate.domain or gate.key.removeprefix("group:"),
            speed_key=gate.key,
            server=gate.server,
            backlog=backlog,
            in_flight=len(gate.state.in_flight),
            shard=number,
            paused=bool(gate.domain and pauses.is_paused(gate.domain)),
            domains=sorted(gate.domains),
        )
        if gate.limit is not None:
            stats.connections = gate.limit.connections
            stats.rate = str(gate.limit.rate) if gate.limit.rate else ""
            stats.interval = format_duration(gate.limit.interval)
            rule = gate.limit.rule
            stats.speed_rule = f"speed[{rule}]" if rule is not None else "*"
            release = gate.state.next_release(gate.limit, now) if backlog else None
            if release is not None:
                stats.next_release.CopyFrom(to_timestamp(release))
        if gate.domain is not None:
            seen.add(gate.domain)
            held.describe(stats, gate.domain)
    for domain in held.by_domain:
        if domain not in seen:
            stats = result.domains.add(domain=domain, shard=number)
            stats.paused = pauses.is_paused(domain)
            held.describe(stats, domain)
    return result
