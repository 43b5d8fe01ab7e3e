"""The scheduler's message handlers: accepted deliveries in, tasks and events out.

Every handler returns only after what it produced was confirmed by the broker; the consumer
acks after that, so a crash at any point re-delivers the input (at-least-once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from postline.common.broker import Broker
from postline.common.broker.consumer import Delivery
from postline.common.broker.topology import (
    DELIVERY_EVENT_KEY,
    ERROR_EVENT_KEY,
    TASK_KEY,
    result_key,
)
from postline.common.events import delivery_event, error_event
from postline.common.policy import Policy
from postline.common.semconv import (
    DELIVERY_ID,
    RECIPIENT_DOMAIN,
    SERVER,
    SPAN_RESULT,
    SPAN_SCHEDULE,
)
from postline.common.telemetry import tracer
from postline.scheduler import decisions
from postline.v1 import delivery_pb2, events_pb2

logger = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, broker: Broker, policy: Policy, clock: Callable[[], float]) -> None:
        self.broker = broker
        self.policy = policy
        self.clock = clock

    async def on_accepted(self, delivery: delivery_pb2.AcceptedDelivery, meta: Delivery) -> None:
        with tracer(__name__).start_as_current_span(SPAN_SCHEDULE) as span:
            span.set_attribute(DELIVERY_ID, delivery.delivery_id)
            span.set_attribute(RECIPIENT_DOMAIN, delivery.recipient_domain)
            span.set_attribute(SERVER, delivery.server)
            server = self.policy.servers.get(delivery.server)
            if server is None:
                await self._fail_unknown_server(delivery)
                return
            shard = int(meta.routing_key.rsplit(".", 1)[-1])
            task = decisions.first_task(server, delivery, shard, self.clock())
            await self.broker.publish(TASK_KEY, task, priority=task.priority)
            logger.debug("%s scheduled to %s", delivery.delivery_id, task.route_host or "MX")

    async def on_result(self, result: delivery_pb2.DeliveryResult, meta: Delivery) -> None:
        delivery = result.task.delivery
        now = self.clock()
        with tracer(__name__).start_as_current_span(SPAN_RESULT) as span:
            span.set_attribute(DELIVERY_ID, delivery.delivery_id)
            if meta.not_before is not None:
                await self._retry_due(result, meta.not_before, now)
                return
            server = self.policy.servers.get(delivery.server)
            if server is None:
                await self._fail_unknown_server(delivery)
                return
            decision = decisions.after_result(server, result, now)
            attempt = result.task.attempt
            match decision:
                case decisions.Final(succeeded=True):
                    event = delivery_event(
                        delivery,
                        events_pb2.DELIVERY_STATUS_SUCCEEDED,
                        now,
                        result=result,
                        attempt=attempt,
                    )
                    await self.broker.publish(DELIVERY_EVENT_KEY, event)
                case decisions.Final(succeeded=False):
                    event = delivery_event(
                        delivery,
                        events_pb2.DELIVERY_STATUS_FAILED,
                        now,
                        result=result,
                        attempt=attempt,
                    )
                    await self.broker.publish(DELIVERY_EVENT_KEY, event)
                case decisions.Retry(not_before=not_before):
                    await self.broker.publish_delayed(
                        result_key(result.task.shard, "deferred"),
                        result,
                        not_before=not_before,
                        now=now,
                    )
                    event = delivery_event(
                        delivery,
                        events_pb2.DELIVERY_STATUS_DEFERRED,
                        now,
                        result=result,
                        attempt=attempt,
                        next_attempt_at=not_before,
                    )
                    await self.broker.publish(DELIVERY_EVENT_KEY, event)
                case decisions.Expired(reason=reason):
                    await self._fail(
                        delivery, events_pb2.ERROR_STATUS_RESEND_TIMEOUT, reason, now, result
                    )

    async def _retry_due(
        self, result: delivery_pb2.DeliveryResult, not_before: float, now: float
    ) -> None:
        """A parked retry came back: re-park if still early, else send the next attempt."""
        if now < not_before:
            await self.broker.publish_delayed(
                result_key(result.task.shard, "deferred"), result, not_before=not_before, now=now
            )
            return
        task = decisions.next_task(result)
        await self.broker.publish(TASK_KEY, task, priority=task.priority)

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
    ) -> None:
        error = error_event(
            delivery, status, now, source=events_pb2.ERROR_SOURCE_POLICY, reason=reason
        )
        event = delivery_event(
            delivery,
            events_pb2.DELIVERY_STATUS_FAILED,
            now,
            result=result,
            attempt=result.task.attempt if result else 0,
            reason=reason,
            error_status=status,
        )
        await self.broker.publish(ERROR_EVENT_KEY, error)
        await self.broker.publish(DELIVERY_EVENT_KEY, event)
