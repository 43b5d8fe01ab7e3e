"""Classifying failed attempts into error-log rows, and suppressing unknown users."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from postline.bounce import metrics
from postline.bounce.classify import classify_failure
from postline.bounce.suppressions import SuppressionList
from postline.common.broker import Broker
from postline.common.broker.consumer import MessageMeta
from postline.common.events import error_event
from postline.common.policy import Policy
from postline.common.semconv import DELIVERY_ID, ERROR_STATUS, SPAN_CLASSIFY
from postline.common.telemetry import tracer
from postline.v1 import delivery_pb2, events_pb2

logger = logging.getLogger(__name__)
_tracer = tracer(__name__)

UNKNOWN_USER = 2

# The sender's name for the SMTP stage that failed -> the rules' command names.
STAGE_COMMANDS = {
    "connect": "CONN",
    "ehlo": "HELO",
    "starttls": "HELO",
    "mail": "MAIL",
    "rcpt": "RCPT",
    "data": "DATA",
}


class Bounce:
    def __init__(
        self, broker: Broker, suppressions: SuppressionList, policy: Callable[[], Policy]
    ) -> None:
        self.broker = broker
        self.suppressions = suppressions
        self.policy = policy

    async def on_failed_result(
        self, result: delivery_pb2.DeliveryResult, meta: MessageMeta
    ) -> None:
        delivery = result.task.delivery
        with _tracer.start_as_current_span(SPAN_CLASSIFY) as span:
            span.set_attribute(DELIVERY_ID, delivery.delivery_id)
            verdict = classify_failure(
                result.reply_code,
                result.enhanced_status,
                result.reply_text,
                # A reply whose stage the sender did not record is taken as an answer about
                # the recipient (see classify.reply_command).
                command=STAGE_COMMANDS.get(result.stage, "RCPT" if result.reply_code else ""),
            )
            span.set_attribute(ERROR_STATUS, verdict.status)
            metrics.CLASSIFIED.labels(str(verdict.status), metrics.SMTP_REPLY).inc()
            error = error_event(
                delivery,
                verdict.status,  # type: ignore[arg-type]
                time.time(),
                source=events_pb2.ERROR_SOURCE_SMTP_REPLY,
                reason=f"{result.reply_code or ''} {result.reply_text}".strip(),
                permanent=verdict.permanent,
                reply_code=result.reply_code,
                enhanced_status=result.enhanced_status,
                return_path=result.task.return_path,
                key=("reply", result.task.attempt),  # a result handled twice is one row
            )
            await self.broker.publish_event(error)
            logger.info(
                "%s classified as status %d (%s)",
                delivery.delivery_id,
                verdict.status,
                verdict.reason,
            )
            if verdict.status == UNKNOWN_USER and verdict.permanent:
                await self._suppress(delivery, error.reason)

    async def _suppress(self, delivery: delivery_pb2.AcceptedDelivery, reason: str) -> None:
        server = self.policy().servers.get(delivery.server)
        if server is None or not server.blocking.enabled:
            return
        expiry = server.blocking.expiry
        await self.suppressions.add(
            delivery.server,
            delivery.recipient,
            reason,
            delivery_id=delivery.delivery_id,
            expire_after=expiry.total_seconds() if expiry else None,
        )
