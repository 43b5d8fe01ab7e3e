"""Delivery status notifications Postline sends to a delivery's submitter (RFC 3464).

Why here: the scheduler is where a delivery's fate is decided (retry, expiry, suppression,
final reply), and it holds what a notice needs: the message itself (to return it), the
retry timing (Will-Retry-Until, the delay warning's moment) and the policy. A notice is
submitted as a new message (``postline.common.submission``, as the relay does) *before* the
handler returns, so the result that caused it is acked only once the notice's deliveries were
confirmed by RabbitMQ: nothing is lost, and a crash in between makes the same notice again
(the same delivery id: one row in the delivery log, though it may reach the submitter twice).

Who gets one, and when (``wanted``):

* never for a null envelope sender, a notice itself (``is_notice``), a forwarding copy (an
  extra delivery Postline made, not one the submitter asked for), or mail sent from
  ``notices.from`` (Postline's own, such as the weekly summary);
* NOTIFY=NEVER: none; with a NOTIFY list, exactly the kinds it names (RFC 3461 §4.1);
* without NOTIFY, the server's ``notices``: ``failure`` and ``success`` for those, and a delay
  warning whenever one is configured;
* a delay warning needs the effective ``delay_warning_after`` (a retry profile's, else
  ``notices.delay_warning_after``; null = none) to have passed since acceptance, and goes once
  per delivery (``DeliveryTask.delay_warned`` travels with the retries).

The notice goes to the envelope sender the submitter gave (never the VERP return path), from
``notices.from``, with the null envelope sender (RFC 3464 §2: so that no notice answers it).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.context import Context

from postline.common.addresses import AddressError, parse_address
from postline.common.broker import Broker
from postline.common.ids import stable_id
from postline.common.policy import Server
from postline.common.semconv import DELIVERY_ID, SERVER, SPAN_NOTICE
from postline.common.submission import Submission, publish_deliveries, publish_queued
from postline.common.telemetry import tracer
from postline.common.timeutil import from_timestamp, to_datetime
from postline.scheduler import decisions, metrics
from postline.scheduler.notice_mail import Action, Notice, compose, returned_full
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)


def wanted(server: Server, delivery: delivery_pb2.AcceptedDelivery, action: Action) -> bool:
    """Whether the submitter gets a notice of this kind about this delivery."""
    if not delivery.envelope_from or delivery.is_notice:
        return False
    if delivery.forwarded_from and not delivery.original_recipient:
        return False  # a forwarding copy: the submitter hears about the original only
    if delivery.envelope_from.strip("<>").lower() == server.notices_from.lower():
        return False  # Postline's own mail (the weekly summary): nobody to tell
    request = delivery.dsn if delivery.HasField("dsn") else None
    if request is not None and request.notify_given:
        if request.notify_never:
            return False
        return {
            Action.DELIVERED: request.notify_success,
            Action.FAILED: request.notify_failure,
            Action.DELAYED: request.notify_delay,
        }[action]
    return {
        Action.DELIVERED: server.notices.success,
        Action.FAILED: server.notices.failure,
        Action.DELAYED: True,
    }[action]


def delay_warning_due(server: Server, task: delivery_pb2.DeliveryTask, now: float) -> bool:
    """Whether a deferral at ``now`` is the moment of this delivery's one delay warning."""
    delivery = task.delivery
    if task.delay_warned or not wanted(server, delivery, Action.DELAYED):
        return False
    after = server.retry_for(decisions.headers_of(delivery), delivery.recipient)
    if after.delay_warning_after is None:
        return False
    accepted = from_timestamp(delivery.accepted_at) if delivery.HasField("accepted_at") else now
    return now - accepted >= after.delay_warning_after.total_seconds()


def notice_for(
    server: Server,
    action: Action,
    task: delivery_pb2.DeliveryTask,
    result: delivery_pb2.DeliveryResult | None,
    now: float,
    *,
    reason: str = "",
    language: str = "en",
) -> Notice:
    """What the notice says; ``reason`` is Postline's own when no reply decided (blocked,
    resend period over)."""
    delivery = task.delivery
    request = delivery.dsn if delivery.HasField("dsn") else None
    original_recipient = request.original_recipient if request is not None else ""
    if not original_recipient and delivery.original_recipient:
        original_recipient = f"rfc822;{delivery.original_recipient}"  # a rewrite rule's
    return Notice(
        action=action,
        reporting_mta=str(server.return_path_domain or "localhost"),
        sender=server.notices_from,
        to=delivery.envelope_from,
        recipient=delivery.recipient,
        original_recipient=original_recipient,
        envelope_id=request.envelope_id if request is not None else "",
        status=_status(action, result, reason),
        diagnostic=_diagnostic(result, reason),
        remote_mta=result.mx_host if result is not None else "",
        arrival=(
            to_datetime(delivery.accepted_at) if delivery.HasField("accepted_at") else _utc(now)
        ),
        last_attempt=(
            to_datetime(result.finished_at)
            if result is not None and result.HasField("finished_at")
            else _utc(now)
        ),
        will_retry_until=(
            to_datetime(task.expires_at)
            if action == Action.DELAYED and task.HasField("expires_at")
            else None
        ),
        original=delivery.content,
        full=returned_full(request),
        original_message_id=delivery.header_message_id,
        language=language,
        delivery_id=delivery.delivery_id,
    )


def _status(action: Action, result: delivery_pb2.DeliveryResult | None, reason: str) -> str:
    code = result.enhanced_status if result is not None else ""
    if action == Action.DELIVERED:
        return code if code.startswith("2.") else "2.0.0"
    if action == Action.DELAYED:
        return code if code.startswith("4.") else "4.0.0"
    if reason:
        # Postline's own decision: the resend period ran out (RFC 3463 4.4.7, delivery time
        # expired, reported as failed), or the address is blocked (5.7.1, not authorized).
        return "4.4.7" if result is not None else "5.7.1"
    return code if code.startswith("5.") else "5.0.0"


def _diagnostic(result: delivery_pb2.DeliveryResult | None, reason: str) -> str:
    if reason:
        return f"x-postline; {reason}"
    if result is None:
        return ""
    if result.reply_code:
        reply = f"{result.reply_code} {result.enhanced_status} {result.reply_text}"
        return "smtp; " + " ".join(reply.split())
    return f"x-postline; {result.reply_text}" if result.reply_text else ""


def made_at(
    task: delivery_pb2.DeliveryTask, result: delivery_pb2.DeliveryResult | None, now: float
) -> float:
    """The moment a notice counts as accepted: its cause's, so that a notice made again after a
    crash is accepted at the same moment too. The delivery log keys a row by (accepted, id): a
    notice accepted at the moment it was made again was a second row, left ``queued``.

    The cause is the attempt that ended (``finished_at`` of its result: a failure, a deferral
    past the delay warning, a success), else the delivery's acceptance (blocked by the
    suppression list, which no attempt decided)."""
    if result is not None and result.HasField("finished_at"):
        return from_timestamp(result.finished_at)
    if task.delivery.HasField("accepted_at"):
        return from_timestamp(task.delivery.accepted_at)
    return now


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


class Notices:
    """Sends notices through Postline's own path; returns once RabbitMQ confirmed them."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def send(
        self,
        server: Server,
        action: Action,
        task: delivery_pb2.DeliveryTask,
        result: delivery_pb2.DeliveryResult | None,
        now: float,
        *,
        reason: str = "",
    ) -> bool:
        """Send one if the submitter wants it; whether one was sent."""
        delivery = task.delivery
        if not wanted(server, delivery, action):
            return False
        try:
            to = parse_address(delivery.envelope_from.strip("<>"))
        except AddressError as exc:
            # The relay and the API checked it: only an old delivery could get here.
            logger.warning("%s no %s notice: %s", delivery.delivery_id, action, exc.reason)
            return False
        user = server.api_user(delivery.api_user) if delivery.api_user else None
        language = str(user.language) if user is not None and user.language else "en"
        notice = notice_for(server, action, task, result, now, reason=reason, language=language)
        content = compose(notice, _utc(now))
        submission = Submission(
            server=delivery.server,
            api_user=delivery.api_user,
            envelope_from=None,  # RFC 3464 §2: a notice has the null reverse-path
            recipients=[to],
            content=content,
            client_ip="",
            accepted_at=made_at(task, result, now),
            is_notice=True,
            # A delivery has one notice of each kind: made again after a crash (its result
            # redelivered) it is the same delivery, and its queued event is counted once.
            anchor=stable_id(delivery.delivery_id, "notice", action),
        )
        # The notice is a message of its own: its own trace (as a submitted message has),
        # linked to the delivery it is about, so that trace keeps only that delivery's spans.
        about = trace.get_current_span().get_span_context()
        links = [trace.Link(about, {DELIVERY_ID: delivery.delivery_id})] if about.is_valid else []
        with tracer(__name__).start_as_current_span(
            SPAN_NOTICE, context=Context(), links=links
        ) as span:
            span.set_attribute(DELIVERY_ID, delivery.delivery_id)
            span.set_attribute(SERVER, delivery.server)
            accepted = await publish_deliveries(self.broker, submission, notice.reporting_mta)
            await publish_queued(self.broker, accepted)
        metrics.NOTICES.labels(action=str(action)).inc()
        logger.info(
            "%s %s notice sent to %s as %s",
            delivery.delivery_id,
            action,
            delivery.envelope_from,
            accepted.deliveries[0].delivery_id,
        )
        return True
