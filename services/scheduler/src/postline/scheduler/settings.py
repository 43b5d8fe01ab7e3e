"""Scheduler settings (environment variables ``POSTLINE_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from postline.common.resolver import parse_nameservers
from postline.common.settings import ServiceSettings


@dataclass(frozen=True)
class RuntimeSettings:
    """What a shard's runtime needs of the settings (tests make one directly)."""

    inbound_prefetch: int = 200
    results_prefetch: int = 100
    backlog_prefetch_max: int = 20
    max_wait: float = 300.0  # a delivery waiting in memory longer goes back to its backlog
    lease_timeout: float = 3600.0
    renew_after: float = 600.0  # below RabbitMQ's consumer_timeout (30 min by default)
    backlog_idle: float = 60.0
    task_batch: int = 8  # granted tasks to the senders per broker message at most


class SchedulerSettings(ServiceSettings):
    grpc_listen: str = "127.0.0.1:50052"
    health_listen: str = "127.0.0.1:9102"
    bounce_grpc: str = Field(
        default="127.0.0.1:50053", description="bounce's gRPC (Suppressions.List at start)"
    )
    # Deliveries of the shard's inbound queue handled at once; none of them waits long (a
    # delivery that must wait goes to its speed key's backlog or a delay queue).
    inbound_prefetch: int = Field(default=200, ge=1, le=10000)
    results_prefetch: int = Field(default=100, ge=1, le=10000)
    # At most this many deliveries of one speed key wait in memory for a slot.
    backlog_prefetch_max: int = Field(default=20, ge=1, le=1000)
    # A delivery waiting in memory longer goes back to its backlog queue (below RabbitMQ's
    # consumer_timeout, 30 min by default).
    max_wait: float = Field(default=300.0, gt=0, le=1500)
    # A grant whose result never came back frees its slot after this (a lost task).
    lease_timeout: float = Field(default=3600.0, gt=0)
    # Deliveries held by prohibited hours come back spread over this many seconds.
    hold_release_spread: float = Field(default=300.0, ge=0)
    # How long a paused member of a speed group is parked before it is looked at again.
    pause_recheck: float = Field(default=30.0, gt=0)
    # An empty backlog queue is deleted after this long unused.
    backlog_idle: float = Field(default=60.0, gt=0)
    # State kept unacked (leases, backlog records, the shard token) is re-published after
    # this long: RabbitMQ closes a channel that keeps a delivery unacked past its
    # consumer_timeout. ("Held" is said only of deliveries held by prohibited hours.)
    renew_after: float = Field(default=600.0, gt=0, le=1500)
    # Granted tasks travel to the senders by group commit, at most this many to a broker
    # message (one message goes whole to one sender: a few, so that senders share the work).
    task_batch: int = Field(default=8, ge=1, le=100)
    # MX lookups for speed rules written with mx: (the sender's variables, so one environment
    # gives both the same resolvers): empty = the system's; else ip[:port],... ([v6]:port).
    dns_servers: str = ""
    dns_timeout: float = Field(default=5.0, gt=0)

    def dns_nameservers(self) -> list[tuple[str, int]]:
        """``dns_servers`` as (ip, port) pairs; empty: the system's."""
        return parse_nameservers(self.dns_servers)

    def runtime(self) -> RuntimeSettings:
        return RuntimeSettings(
            inbound_prefetch=self.inbound_prefetch,
            results_prefetch=self.results_prefetch,
            backlog_prefetch_max=self.backlog_prefetch_max,
            max_wait=self.max_wait,
            lease_timeout=self.lease_timeout,
            backlog_idle=self.backlog_idle,
            renew_after=self.renew_after,
            task_batch=self.task_batch,
        )
