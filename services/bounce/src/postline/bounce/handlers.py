"""Classifying failed attempts into error-log rows."""

from __future__ import annotations

import logging
import time

from postline.bounce.classify import classify_reply
from postline.common.broker import Broker
from postline.common.broker.consumer import Delivery
from postline.common.broker.topology import ERROR_EVENT_KEY
from postline.common.events import error_event
from postline.common.semconv import DELIVERY_ID, ERROR_STATUS, SPAN_CLASSIFY
from postline.common.telemetry import tracer
from postline.v1 import delivery_pb2, events_pb2

logger = logging.getLogger(__name__)


class Bounce:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def on_failed_result(self, result: delivery_pb2.DeliveryResult, meta: Delivery) -> None:
        delivery = result.task.delivery
        with tracer(__name__).start_as_current_span(SPAN_CLASSIFY) as span:
            span.set_attribute(DELIVERY_ID, delivery.delivery_id)
            verdict = classify_reply(result.reply_code, result.enhanced_status, result.reply_text)
            span.set_attribute(ERROR_STATUS, verdict.status)
            error = error_event(
                delivery,
                verdict.status,  # type: ignore[arg-type]
                time.time(),
                source=events_pb2.ERROR_SOURCE_SMTP_REPLY,
                reason=f"{result.reply_code} {result.reply_text}".strip(),
                permanent=verdict.permanent,
                reply_code=result.reply_code,
                enhanced_status=result.enhanced_status,
                return_path=result.task.return_path,
            )
            await self.broker.publish(ERROR_EVENT_KEY, error)
            logger.info("%s classified as status %d", delivery.delivery_id, verdict.status)
