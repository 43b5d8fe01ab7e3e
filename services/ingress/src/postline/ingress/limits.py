"""The relay's reception limits: simultaneous connections per server, messages per client IP.

Both are counted in this process: with several ingress replicas behind a load balancer, each
replica enforces the policy's numbers on its own share of the clients.

Which server's limits apply before the client said who it is (RFC 4954 AUTH comes after the
greeting)? A connection belongs to no server until it is *assigned* one: at connect when its
IP is in a server's ``relay_without_auth_from`` (that server relays for it without AUTH), else
at a successful AUTH. Until then:

* the IP must be in the ``allowed_ips`` of at least one server (``554 5.7.1`` otherwise), and
  once assigned, in its own server's (checked again at AUTH and at MAIL);
* the connection is admitted while the servers that accept its IP have room in total, the
  connections not yet assigned counting against all of them (``421 4.7.0`` otherwise). With
  one server this is exactly its ``max_connections``. On assignment the server's own
  ``max_connections`` is checked again, counting only its assigned connections.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from postline.common.policy import Policy, PolicySource, Rate
from postline.common.policy.fields import IPAddressValue


@dataclass
class Slot:
    """One open connection's place: the server it belongs to, once known."""

    ip: str
    server: str | None = None
    closed: bool = False


class ConnectionGate:
    """Counts open connections, per server once assigned, and refuses those beyond the limits."""

    def __init__(self, policy: PolicySource) -> None:
        self._policy = policy
        self._assigned: Counter[str] = Counter()
        self._unassigned = 0

    @property
    def policy(self) -> Policy:
        return self._policy()

    @property
    def open_connections(self) -> int:
        return self._unassigned + sum(self._assigned.values())

    def accepting_servers(self, ip: str | IPAddressValue) -> list[str]:
        """The servers whose ``allowed_ips`` let ``ip`` connect."""
        return [
            name
            for name, server in self.policy.servers.items()
            if server.relay.accepts_connection_from(ip)
        ]

    def open(self, ip: str, servers: list[str]) -> Slot | None:
        """A slot for a new connection from ``ip`` accepted by ``servers``; None when full."""
        room = sum(
            self.policy.servers[name].relay.max_connections - self._assigned[name]
            for name in servers
        )
        if room - self._unassigned <= 0:
            return None
        self._unassigned += 1
        return Slot(ip)

    def assign(self, slot: Slot, server: str) -> bool:
        """Move ``slot`` to ``server``; False (and unchanged) when that server is full."""
        if slot.server == server:
            return True
        if self._assigned[server] >= self.policy.servers[server].relay.max_connections:
            return False
        self._release(slot)
        self._assigned[server] += 1
        slot.server = server
        return True

    def close(self, slot: Slot) -> None:
        if slot.closed:
            return
        self._release(slot)
        slot.closed = True

    def _release(self, slot: Slot) -> None:
        if slot.server is None:
            self._unassigned -= 1
            return
        self._assigned[slot.server] -= 1
        if not self._assigned[slot.server]:
            del self._assigned[slot.server]


class RateLimiter:
    """A token bucket per (server, client IP): ``rate.count`` messages, refilled over ``rate.per``.

    A full bucket lets a client send a burst of ``count`` messages at once, then one every
    ``rate.spacing`` seconds: the "reception interval" of the product this replaces. Buckets
    that have refilled completely are forgotten, so memory follows the active clients only.
    """

    PRUNE_ABOVE = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, server: str, ip: str, rate: Rate) -> bool:
        """Take one token from the bucket of (``server``, ``ip``); False when it is empty."""
        now = self._clock()
        key = (server, ip)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.PRUNE_ABOVE:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(rate.count), now, rate)
        bucket.rate = rate  # a reloaded policy may have changed it
        bucket.refill(now)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _prune(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket.
        full = [key for key, bucket in self._buckets.items() if bucket.refill(now)]
        for key in full:
            del self._buckets[key]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last: float
    rate: Rate

    def refill(self, now: float) -> bool:
        """Add the tokens earned since the last call; True when the bucket is full."""
        capacity = float(self.rate.count)
        self.tokens = min(capacity, self.tokens + (now - self.last) * self.rate.per_second)
        self.last = now
        return self.tokens >= capacity
