"""The scheduler's pipeline: what happens to a delivery, step by step, on the shard that owns it.

    accepted   -> known server? -> suppressed? (fail 10) -> forwarding (copy / rewrite)
               -> first task -> dispatch
    parked     -> due yet? (else park again) -> suppressed? -> dispatch
    dispatch   -> prohibited hours? (park until the window ends, spread)
               -> the speed key's shard? (else hand it over) -> speed gate (grant, backlog,
                  or park a paused group member)
    result     -> free the speed slot -> succeeded / failed / retry (park until the next
                  attempt) / resend period over (fail 3)
    notices    -> success / failure / one delay warning to the submitter, when wanted
                  (``notices.py``), submitted before the result is acked

Every handler returns only after what it produced was confirmed by the broker; the consumer
acks after that, so a crash at any point re-delivers the input (at-least-once). The events a
handler produces linger up to ``EVENT_LINGER`` for others to travel with (``publish_events``):
its input is acked that much later, and many results' events go in one broker message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from postline.common.broker import Broker
from postline.common.broker.consumer import MessageMeta, Requeue
from postline.common.broker.events import Event
from postline.common.broker.topology import accepted_key, shard_for
from postline.common.events import delivery_event, error_event
from postline.common.policy import Policy, PolicySource, Server, SpeedLimit
from postline.common.policy.filters import NormalizedHeaders
from postline.common.semconv import (
    ATTEMPT,
    DELIVERY_ID,
    PRIORITY,
    RECIPIENT_DOMAIN,
    SERVER,
    SHARD,
    SPAN_RESULT,
    SPAN_SCHEDULE,
)
from postline.common.telemetry import WAIT_HEADER, may_record, tracer, wait_links
from postline.common.timeutil import from_timestamp, to_timestamp
from postline.scheduler import decisions, metrics
from postline.scheduler.forwarding import Copy, Rewrite, forwarding_for
from postline.scheduler.interfaces import GrantOutcome, Shard, SpeedKey
from postline.scheduler.mx import MxCache
from postline.scheduler.notice_mail import Action
from postline.scheduler.notices import Notices, delay_warning_due
from postline.scheduler.pauses import PausedDomains
from postline.scheduler.suppressions import SuppressionList
from postline.v1 import delivery_pb2, events_pb2

logger = logging.getLogger(__name__)
_tracer = tracer(__name__)

# Seconds a handler's events wait for others before they go (``broker/groups.py``): under
# load the results of many broker messages share one event message (each costs RabbitMQ,
# reports and the webhook fan-out the same whatever it carries), for 50 ms more before a
# result is acked (its slot is freed before; the results prefetch holds far more than 50 ms
# of results). See bench/README.md, "Round 6".
EVENT_LINGER = 0.05


class Scheduler:
    def __init__(
        self,
        broker: Broker,
        policy: PolicySource,
        clock: Callable[[], float],
        *,
        shards: int,
        suppressions: SuppressionList,
        pauses: PausedDomains,
        mx: MxCache,
        hold_spread: float = 300.0,
        pause_recheck: float = 30.0,
    ) -> None:
        self.broker = broker
        self._policy = policy
        self.clock = clock
        self.shards = shards
        self.suppressions = suppressions
        self.pauses = pauses
        self.mx = mx
        self.hold_spread = hold_spread
        self.pause_recheck = pause_recheck
        self.notices = Notices(broker)

    @property
    def policy(self) -> Policy:
        """The policy as it is now: each delivery and result is decided under the current one."""
        return self._policy()

    # --- inbound ---------------------------------------------------------------------------

    async def on_accepted(
        self, delivery: delivery_pb2.AcceptedDelivery, meta: MessageMeta, shard: Shard
    ) -> None:
        with _tracer.start_as_current_span(SPAN_SCHEDULE) as span:
            span.set_attribute(DELIVERY_ID, delivery.delivery_id)
            span.set_attribute(RECIPIENT_DOMAIN, delivery.recipient_domain)
            span.set_attribute(SERVER, delivery.server)
            span.set_attribute(SHARD, shard.number)
            now = self.clock()
            server = self.policy.servers.get(delivery.server)
            if server is None:
                await self._fail_unknown_server(delivery)
                return
            if self._suppressed(server, delivery):
                await self._fail_blocked(server, delivery, now, attempt=0)
                return
            headers = decisions.headers_of(delivery)  # for every rule below
            match forwarding_for(server, delivery, headers):
                case Copy(copy=copy):
                    await self._forward_copy(copy, now)
                case Rewrite(delivery=rewritten):
                    # Its own shard checks the new recipient from the start (suppression...).
                    target = shard_for(rewritten.recipient_domain, self.shards)
                    await self.broker.publish(accepted_key(target), rewritten)
                    metrics.decided("forwarded").inc()
                    logger.info(
                        "%s rewritten to %s", delivery.delivery_id, rewritten.recipient_domain
                    )
                    return
            # Worked out once for both (``dispatch`` works it out again for a task that comes
            # back later: the policy may have changed meanwhile).
            route = decisions.route_for(server, delivery.recipient_domain)
            task = decisions.first_task(server, delivery, shard.number, now, headers, route)
            span.set_attribute(PRIORITY, task.priority)
            await self.dispatch(task, server, shard, headers, route)

    async def on_parked(
        self, task: delivery_pb2.DeliveryTask, meta: MessageMeta, shard: Shard
    ) -> None:
        """A parked task came back (a retry, a hold, a hop of a long wait), or a group's
        delivery was handed to the group's shard."""
        now = self.clock()
        not_before = meta.not_before
        wait = str(meta.headers.get(WAIT_HEADER, "") or "")
        if not_before is not None and now < not_before:
            await self.park(task, shard.number, not_before, now, wait)  # a hop of a long wait
            return
        delivery = task.delivery
        # A decision of its own: linked to the span that parked the delivery, not under it.
        links = wait_links(meta.headers) if may_record() else []
        with _tracer.start_as_current_span(SPAN_SCHEDULE, links=links) as span:
            span.set_attribute(DELIVERY_ID, delivery.delivery_id)
            span.set_attribute(ATTEMPT, task.attempt)
            span.set_attribute(SHARD, shard.number)
            server = self.policy.servers.get(delivery.server)
            if server is None:
                await self._fail_unknown_server(delivery)
                return
            if self._suppressed(server, delivery):
                await self._fail_blocked(server, delivery, now, attempt=task.attempt - 1)
                return
            await self.dispatch(task, server, shard)

    async def dispatch(
        self,
        task: delivery_pb2.DeliveryTask,
        server: Server,
        shard: Shard,
        headers: NormalizedHeaders | None = None,
        route: decisions.Route | None = None,
    ) -> None:
        """``headers`` and ``route``: the delivery's, when the caller worked them out already
        (under the same policy)."""
        now = self.clock()
        delivery = task.delivery
        hold = decisions.hold_until(server, task, now, headers)
        if hold is not None:
            await self._hold(task, hold, now, shard)
            return
        shard.note_released(delivery.recipient_domain, delivery.delivery_id)
        if route is None:
            route = decisions.route_for(server, delivery.recipient_domain)
            task.route_host, task.route_port, task.tls = route.host, route.port, route.tls
        limit = await self.limit_for(server, task)
        owner = decisions.owner_shard(limit, delivery.recipient_domain, self.shards)
        if owner != shard.number and task.handovers == 0:
            # A group's limit is counted on one shard; its deliveries go there. Once: if the
            # shards disagree (an MX lookup answered differently), the second one keeps it.
            task.handovers += 1
            await self.broker.publish(accepted_key(owner), task)
            return
        outcome = await shard.submit(task, delivery.server, limit)
        if outcome == GrantOutcome.PAUSED:
            await self.park(task, shard.number, now + self.pause_recheck, now, "paused")
            metrics.decided("paused").inc()

    async def ready_for_backlog(
        self, task: delivery_pb2.DeliveryTask, gate: SpeedKey, shard: Shard
    ) -> SpeedLimit | None:
        """A backlogged delivery's turn to wait for a slot: may it still go this way? None
        when it was dealt with otherwise (failed, parked, handed over)."""
        now = self.clock()
        delivery = task.delivery
        server = self.policy.servers.get(delivery.server)
        if server is None:
            await self._fail_unknown_server(delivery)
            return None
        if self._suppressed(server, delivery):
            await self._fail_blocked(server, delivery, now, attempt=task.attempt - 1)
            return None
        if self.pauses.is_paused(delivery.recipient_domain):
            if gate.domain is not None:
                raise Requeue  # its key is paused: it waits in the backlog queue
            await self.park(task, shard.number, now + self.pause_recheck, now, "paused")
            return None
        limit = await self.limit_for(server, task)
        if limit.key != gate.key:
            await self.dispatch(task, server, shard)  # the policy changed its speed rule
            return None
        return limit

    async def park(
        self,
        task: delivery_pb2.DeliveryTask,
        shard: int,
        not_before: float,
        now: float,
        wait: str = "retry",
    ) -> None:
        """Wait in the delay queues until ``not_before``; ``wait`` says why (the link of the
        span that takes it up again names it)."""
        await self.broker.publish_delayed(
            accepted_key(shard), task, not_before=not_before, now=now, wait=wait
        )

    async def _hold(
        self, task: delivery_pb2.DeliveryTask, hold: float, now: float, shard: Shard
    ) -> None:
        delivery = task.delivery
        until = hold + decisions.release_spread(delivery.delivery_id, self.hold_spread)
        newly = not task.HasField("held_until") or from_timestamp(task.held_until) <= now
        task.held_until.CopyFrom(to_timestamp(until))
        shard.note_held(delivery.recipient_domain, delivery.delivery_id, until)
        await self.park(task, shard.number, until, now, "prohibited_hours")
        if newly:
            metrics.decided("held").inc()
            when = datetime.fromtimestamp(hold, tz=UTC).isoformat()
            event = delivery_event(
                delivery,
                events_pb2.DELIVERY_STATUS_DEFERRED,
                now,
                attempt=task.attempt - 1,
                reason=f"held by prohibited hours until {when}",
                next_attempt_at=until,
            )
            await self._publish_events(event)
            logger.info("%s held by prohibited hours until %s", delivery.delivery_id, when)

    async def limit_for(self, server: Server, task: delivery_pb2.DeliveryTask) -> SpeedLimit:
        domain = task.delivery.recipient_domain
        if task.route_host:
            hosts: tuple[str, ...] = (task.route_host,)
        elif server.uses_mx_rules:
            hosts = await self.mx.hosts(domain)
        else:
            hosts = ()
        return server.speed_for(domain, hosts)

    # --- results ---------------------------------------------------------------------------

    async def on_result(
        self, result: delivery_pb2.DeliveryResult, meta: MessageMeta, shard: Shard
    ) -> None:
        delivery = result.task.delivery
        now = self.clock()
        with _tracer.start_as_current_span(SPAN_RESULT) as span:
            span.set_attribute(DELIVERY_ID, delivery.delivery_id)
            span.set_attribute(ATTEMPT, result.task.attempt)
            if meta.not_before is not None:
                # A retry parked by an earlier version, on the results queue: its next task
                # now waits like any other parked task.
                await self.park(decisions.next_task(result), shard.number, meta.not_before, now)
                return
            shard.release(result.task)
            server = self.policy.servers.get(delivery.server)
            if server is None:
                await self._fail_unknown_server(delivery)
                return
            decision = decisions.after_result(server, result, now)
            attempt = result.task.attempt
            match decision:
                case decisions.Final(succeeded=succeeded):
                    action = Action.DELIVERED if succeeded else Action.FAILED
                    await self.notices.send(server, action, result.task, result, now)
                    status = (
                        events_pb2.DELIVERY_STATUS_SUCCEEDED
                        if succeeded
                        else events_pb2.DELIVERY_STATUS_FAILED
                    )
                    event = delivery_event(delivery, status, now, result=result, attempt=attempt)
                    await self._publish_events(event)
                    metrics.decided("succeeded" if succeeded else "failed").inc()
                case decisions.Retry(not_before=not_before, asked=asked):
                    retry = decisions.next_task(result)
                    if delay_warning_due(server, result.task, now):
                        await self.notices.send(server, Action.DELAYED, result.task, result, now)
                        retry.delay_warned = True
                    await self.park(retry, shard.number, not_before, now)
                    event = delivery_event(
                        delivery,
                        events_pb2.DELIVERY_STATUS_DEFERRED,
                        now,
                        result=result,
                        attempt=attempt,
                        next_attempt_at=not_before,
                    )
                    await self._publish_events(event)
                    metrics.decided("retry").inc()
                    if asked is not None:
                        logger.info(
                            "%s retried in %ss as its reply asked",
                            delivery.delivery_id,
                            round(not_before - now),
                        )
                case decisions.Expired(reason=reason):
                    await self.notices.send(
                        server, Action.FAILED, result.task, result, now, reason=reason
                    )
                    await self._fail(
                        delivery,
                        events_pb2.ERROR_STATUS_RESEND_TIMEOUT,
                        reason,
                        now,
                        result,
                        attempt=attempt,
                    )
                    metrics.decided("expired").inc()

    # --- outcomes --------------------------------------------------------------------------

    async def _publish_events(self, *events: Event) -> None:
        """Publish the events of a decision; return once every one was confirmed."""
        await self.broker.publish_events(events, linger=EVENT_LINGER)

    def _suppressed(self, server: Server, delivery: delivery_pb2.AcceptedDelivery) -> bool:
        return server.blocking.enabled and self.suppressions.is_suppressed(
            delivery.server, delivery.recipient
        )

    async def _forward_copy(self, copy: delivery_pb2.AcceptedDelivery, now: float) -> None:
        target = shard_for(copy.recipient_domain, self.shards)
        await self.broker.publish(accepted_key(target), copy)
        queued = delivery_event(
            copy,
            events_pb2.DELIVERY_STATUS_QUEUED,
            now,
            reason=f"forwarded copy of delivery {copy.forwarded_from}",
        )
        await self._publish_events(queued)
        metrics.decided("forwarded").inc()
        logger.info("%s copied to %s as %s", copy.forwarded_from, copy.recipient, copy.delivery_id)

    async def _fail_blocked(
        self, server: Server, delivery: delivery_pb2.AcceptedDelivery, now: float, *, attempt: int
    ) -> None:
        reason = f"blocked: {delivery.recipient} is on the suppression list of {delivery.server}"
        logger.info("%s %s", delivery.delivery_id, reason)
        task = delivery_pb2.DeliveryTask(delivery=delivery)
        await self.notices.send(server, Action.FAILED, task, None, now, reason=reason)
        await self._fail(
            delivery,
            events_pb2.ERROR_STATUS_BLOCKED_ADDRESS,
            reason,
            now,
            None,
            attempt=max(0, attempt),
        )
        metrics.decided("suppressed").inc()

    async def _fail_unknown_server(self, delivery: delivery_pb2.AcceptedDelivery) -> None:
        reason = f"server {delivery.server!r} is not in the policy"
        logger.error("%s failed: %s", delivery.delivery_id, reason)
        await self._fail(delivery, events_pb2.ERROR_STATUS_OTHER, reason, self.clock(), None)

    async def _fail(
        self,
        delivery: delivery_pb2.AcceptedDelivery,
        status: events_pb2.ErrorStatus.ValueType,
        reason: str,
        now: float,
        result: delivery_pb2.DeliveryResult | None,
        *,
        attempt: int = 0,
    ) -> None:
        error = error_event(
            delivery,
            status,
            now,
            source=events_pb2.ERROR_SOURCE_POLICY,
            reason=reason,
            return_path=result.task.return_path if result is not None else "",
            key=("policy", status),
        )
        event = delivery_event(
            delivery,
            events_pb2.DELIVERY_STATUS_FAILED,
            now,
            result=result,
            attempt=attempt,
            reason=reason,
            error_status=status,
        )
        await self._publish_events(error, event)
