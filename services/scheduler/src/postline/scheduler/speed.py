"""The accounting behind one speed key's limits: slots in use, the interval, the rate.

A *grant* is the scheduler's permission for one attempt; the sender opens a connection only
for a granted task, so "connections" is the number of grants whose result has not come back.
Pure: every method takes ``now`` (epoch seconds), so tests drive it with any clock.

The rate is enforced as evenly spaced grants (GCRA, "virtual scheduling"): ``600/min`` means
one grant every 100 ms, not 600 at once then a pause. A grant a little late (timer jitter,
a busy loop) is caught up by the next one, so a backlogged key runs at its rate on average
instead of slightly below it; after idle time at most one grant comes early.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postline.common.policy import SpeedLimit

# How early a grant may come relative to the rate's schedule, as a share of its spacing.
RATE_TOLERANCE = 0.05
# Float slack: a timer computed for an exact moment may wake a hair before it.
EPSILON = 1e-6


@dataclass
class SpeedState:
    in_flight: dict[str, float] = field(default_factory=dict)  # grant id -> granted at
    last_grant: float | None = None
    rate_tat: float | None = None  # theoretical arrival time of the next grant (GCRA)

    def wait(self, limit: SpeedLimit, now: float) -> float | None:
        """0 when a grant may go now; else the seconds until one may; None when every
        connection is in use (only a result frees one)."""
        if len(self.in_flight) >= limit.connections:
            return None
        ready = now
        interval = limit.interval.total_seconds()
        if interval > 0 and self.last_grant is not None:
            ready = max(ready, self.last_grant + interval)
        if limit.rate is not None and self.rate_tat is not None:
            spacing = limit.rate.spacing
            ready = max(ready, self.rate_tat - RATE_TOLERANCE * spacing)
        wait = ready - now
        return 0.0 if wait <= EPSILON else wait

    def grant(self, grant_id: str, limit: SpeedLimit, now: float) -> None:
        """Take a slot; the caller checked ``wait(...) == 0``."""
        self.in_flight[grant_id] = now
        self.last_grant = now
        if limit.rate is not None:
            spacing = limit.rate.spacing
            previous = self.rate_tat if self.rate_tat is not None else now
            self.rate_tat = max(previous, now - RATE_TOLERANCE * spacing) + spacing

    def release(self, grant_id: str) -> bool:
        """Free the slot of a finished attempt; False if it was not counted here."""
        return self.in_flight.pop(grant_id, None) is not None

    def recover(self, grant_id: str, granted_at: float) -> None:
        """Count a grant made by a previous owner of the shard (from its lease)."""
        self.in_flight.setdefault(grant_id, granted_at)

    def take_over(self, limit: SpeedLimit, claimed_at: float) -> None:
        """A new owner does not know when the previous one last granted, only that it was
        before the shard was claimed: assuming that moment keeps the interval and the rate
        across a failover."""
        self.last_grant = claimed_at
        if limit.rate is not None:
            self.rate_tat = claimed_at + limit.rate.spacing

    def expired(self, before: float) -> list[str]:
        """Grants older than ``before`` (their result never came: a lost lease)."""
        return [g for g, at in self.in_flight.items() if at < before]

    def next_release(self, limit: SpeedLimit, now: float) -> float | None:
        """When the next grant may go: None if now or on a result."""
        wait = self.wait(limit, now)
        return now + wait if wait else None
