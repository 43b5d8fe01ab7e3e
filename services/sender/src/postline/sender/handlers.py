"""The sender's handler: a task in, an attempt, its result out (acked after the confirm)."""

from __future__ import annotations

import logging

from postline.common.broker import Broker
from postline.common.broker.consumer import Delivery
from postline.common.broker.topology import result_key
from postline.common.semconv import ATTEMPT, DELIVERY_ID, OUTCOME, REPLY_CODE, SPAN_ATTEMPT
from postline.common.telemetry import tracer
from postline.sender.attempt import attempt
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)

_OUTCOME_KEYS = {
    delivery_pb2.OUTCOME_SUCCEEDED: "succeeded",
    delivery_pb2.OUTCOME_DEFERRED: "deferred",
    delivery_pb2.OUTCOME_FAILED: "failed",
}


class Sender:
    def __init__(self, broker: Broker, hostname: str, timeout: float) -> None:
        self.broker = broker
        self.hostname = hostname
        self.timeout = timeout

    async def on_task(self, task: delivery_pb2.DeliveryTask, meta: Delivery) -> None:
        with tracer(__name__).start_as_current_span(SPAN_ATTEMPT) as span:
            span.set_attribute(DELIVERY_ID, task.delivery.delivery_id)
            span.set_attribute(ATTEMPT, task.attempt)
            result = await attempt(task, hostname=self.hostname, timeout=self.timeout)
            outcome = _OUTCOME_KEYS[result.outcome]
            span.set_attribute(OUTCOME, outcome)
            span.set_attribute(REPLY_CODE, result.reply_code)
            logger.info(
                "%s attempt %d %s: %d %s",
                task.delivery.delivery_id,
                task.attempt,
                outcome,
                result.reply_code,
                result.reply_text,
            )
            await self.broker.publish(result_key(task.shard, outcome), result)
