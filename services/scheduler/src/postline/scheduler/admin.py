"""The scheduler's admin API, ``postline.v1.SchedulerAdmin`` (proto/postline/v1/scheduler.proto):
queue statistics, pause/resume a domain, explain a delivery.

Any replica answers for the whole deployment (statistics come from every shard owner's
snapshots; pauses go through the control stream every replica reads). It has no
authentication: serve it on a private address (127.0.0.1, or a NetworkPolicy in Kubernetes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from postline.common.broker import Broker
from postline.common.policy import Policy, PolicySource
from postline.common.runtime import split_listen
from postline.common.telemetry import grpc_server_interceptors
from postline.common.timeutil import from_timestamp
from postline.scheduler import decisions
from postline.scheduler.explain import explain
from postline.scheduler.mx import MxCache
from postline.scheduler.ownership import Ownership
from postline.scheduler.pauses import PausedDomains
from postline.scheduler.stats import Snapshots, queue_stats
from postline.scheduler.suppressions import SuppressionList
from postline.v1 import scheduler_pb2, scheduler_pb2_grpc

logger = logging.getLogger(__name__)


class SchedulerAdmin(scheduler_pb2_grpc.SchedulerAdminServicer):
    def __init__(
        self,
        *,
        policy: PolicySource,
        broker: Broker,
        ownership: Ownership,
        snapshots: Snapshots,
        pauses: PausedDomains,
        suppressions: SuppressionList,
        mx: MxCache,
        clock: Callable[[], float],
    ) -> None:
        self._policy = policy
        self.broker = broker
        self.ownership = ownership
        self.snapshots = snapshots
        self.pauses = pauses
        self.suppressions = suppressions
        self.mx = mx
        self.clock = clock

    @property
    def policy(self) -> Policy:
        return self._policy()

    async def QueueStats(
        self, request: scheduler_pb2.QueueStatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> scheduler_pb2.QueueStatsResponse:
        live = {k: r.snapshot() for k, r in self.ownership.runtimes.items() if not r.stopping}
        response = queue_stats(self.ownership.shards, live, self.snapshots, request.domain)
        response.suppression_list_loaded = self.suppressions.loaded
        return response

    async def PauseDomain(
        self, request: scheduler_pb2.DomainRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> scheduler_pb2.DomainResponse:
        return await self._set(request, context, paused=True)

    async def ResumeDomain(
        self, request: scheduler_pb2.DomainRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> scheduler_pb2.DomainResponse:
        return await self._set(request, context, paused=False)

    async def _set(
        self,
        request: scheduler_pb2.DomainRequest,
        context: grpc.aio.ServicerContext[Any, Any],
        *,
        paused: bool,
    ) -> scheduler_pb2.DomainResponse:
        domain = request.domain.strip().lower().removesuffix(".")
        if not domain or "@" in domain or " " in domain:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "domain: a domain name")
        now_paused = await self.pauses.set(self.broker, domain, paused)
        logger.info("%s %s through the admin API", domain, "paused" if paused else "resumed")
        return scheduler_pb2.DomainResponse(domain=domain, paused=now_paused)

    async def Explain(
        self, request: scheduler_pb2.ExplainRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> scheduler_pb2.ExplainResponse:
        name = request.server
        if not name and len(self.policy.servers) == 1:
            name = next(iter(self.policy.servers))
        server = self.policy.servers.get(name)
        if server is None:
            known = ", ".join(self.policy.servers)
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"server: unknown server {request.server!r} ({known})"
            )
        assert server is not None
        if "@" not in request.recipient:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "recipient: an address")
        at = from_timestamp(request.at) if request.HasField("at") else self.clock()
        domain = request.recipient.rsplit("@", 1)[1].lower()
        hosts = tuple(request.mx_hosts)
        if not hosts and server.uses_mx_rules and not decisions.route_for(server, domain).host:
            hosts = await self.mx.hosts(domain)
        suppressed = None
        if self.suppressions.loaded:
            suppressed = self.suppressions.is_suppressed(name, request.recipient)
        explanation = explain(
            name,
            server,
            request.recipient,
            dict(request.headers),
            datetime.fromtimestamp(at, tz=UTC),
            shards=self.ownership.shards,
            mx_hosts=hosts,
            suppressed=suppressed,
        )
        if suppressed is None and server.blocking.enabled:
            explanation.reasons[0] = (
                "blocking: this scheduler has not loaded the suppression list from bounce yet"
            )
        return explanation.to_proto()


async def serve_admin(listen: str, servicer: SchedulerAdmin) -> tuple[grpc.aio.Server, int]:
    """Serve on ``listen`` (port 0: any free port); returns the server and its port."""
    server = grpc.aio.server(interceptors=grpc_server_interceptors())
    scheduler_pb2_grpc.add_SchedulerAdminServicer_to_server(servicer, server)
    split_listen(listen)  # a clear error for a malformed address
    port = server.add_insecure_port(listen)
    if not port:
        raise RuntimeError(f"cannot listen on {listen}")
    await server.start()
    logger.info("%s serving the scheduler admin API", listen)
    return server, port
