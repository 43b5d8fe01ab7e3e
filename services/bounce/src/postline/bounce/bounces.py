"""A bounce mail received on a return-path address -> error-log rows, suppressions, complaints.

Tying a bounce to its delivery, most certain first:
  1. the VERP address it was sent to (``bounce-<delivery id>@<return path domain>``);
  2. the returned original's ``X-Postline-Delivery-Id`` header, when the bounce carries it;
  3. the returned original's ``Message-ID`` and the failed recipient, in the record of
     deliveries (``deliveries.py``).
The delivery's record fills the error-log row (from, to, subject, api data, server); without
one, the row is built from the bounce itself (its recipient, the returned original's
headers) and the server is the one whose ``return_path_domain`` received it, and a VERP
address still names its delivery. A bounce can overtake its delivery's record (a destination
that bounces at once, this service's queue of `queued` events behind under load), so a VERP id
made in the last minutes is waited for a few seconds (``LINK_WAIT_SECONDS``) before going on
without it.

A bounce may arrive after its delivery had succeeded (the destination accepted the mail and
failed later, e.g. a forwarding hop): it still becomes an error-log row, and the delivery
keeps its own history (the bounce service never rewrites a delivery's status).

A feedback report (a complaint) is no failure: it is recorded in the ``complaints`` table and
published as a ``ComplaintReceived`` (routing key ``complaint``, what event webhooks deliver as
``complained``), completed from the delivery's record when its VERP address names one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from postline.bounce.deliveries import Deliveries, KnownDelivery
from postline.bounce.mail import BounceReport, FailedRecipient, Kind, parse_bounce
from postline.bounce.store import Store
from postline.bounce.verdicts import Verdict, verdict_for
from postline.common.events import error_event
from postline.common.ids import id_time, new_id
from postline.common.policy import Policy
from postline.common.timeutil import to_timestamp
from postline.common.verp import decode_verp
from postline.v1 import delivery_pb2, events_pb2

logger = logging.getLogger(__name__)

DELIVERY_ID_HEADER = "x-postline-delivery-id"
UNKNOWN_USER = 2


@dataclass
class BounceMailOutcome:
    """What one received bounce mail produced."""

    report: BounceReport
    errors: list[events_pb2.ErrorClassified] = field(default_factory=list)
    # (server, address, reason, delivery id) to suppress: permanent unknown-user failures.
    suppress: list[tuple[str, str, str, str]] = field(default_factory=list)
    complaints: list[events_pb2.ComplaintReceived] = field(default_factory=list)


def server_for_domain(policy: Policy, domain: str) -> str:
    domain = domain.lower()
    for name, server in policy.servers.items():
        if str(server.return_path_domain).lower() == domain:
            return name
    return ""


# A bounce may overtake its delivery's record (the `queued` event on its way to this service,
# behind others under load): a VERP id made this recently is waited for, this long at most.
RECENT_SECONDS = 300.0
LINK_WAIT_SECONDS = 5.0
LINK_POLL_SECONDS = 0.2


class BounceMails:
    def __init__(
        self, deliveries: Deliveries, store: Store, *, link_wait: float = LINK_WAIT_SECONDS
    ) -> None:
        self.deliveries = deliveries
        self.store = store
        self.link_wait = link_wait

    async def process(
        self, content: bytes, rcpt_tos: list[str], policy: Policy, *, now: float | None = None
    ) -> BounceMailOutcome:
        at = time.time() if now is None else now
        report = parse_bounce(content)
        outcome = BounceMailOutcome(report)
        verp_ids = [d for d in (decode_verp(r) for r in rcpt_tos) if d]
        return_path = rcpt_tos[0] if rcpt_tos else ""
        fallback_server = server_for_domain(policy, return_path.rpartition("@")[2])
        if report.kind is Kind.FEEDBACK:
            outcome.complaints = await self._complaint(report, verp_ids, fallback_server, at)
            return outcome
        if report.kind is not Kind.BOUNCE:
            logger.info("%s: %s mail, not a bounce; dropped", return_path, report.kind)
            return outcome
        single = len(report.recipients) == 1
        for failed in report.recipients:
            known = await self._delivery(failed, report, verp_ids, single, at)
            verdict = verdict_for(failed)
            error = _error(failed, verdict, known, report, return_path, at)
            if known is None and single and len(verp_ids) == 1:
                # Its record never came (or is past retention): the VERP address still says
                # which delivery it is, and reports can join the row to its delivery log.
                error.delivery_id = verp_ids[0]
            error.server = error.server or fallback_server
            outcome.errors.append(error)
            blocking = (
                policy.servers[error.server].blocking if error.server in policy.servers else None
            )
            permanent_unknown_user = verdict.status == UNKNOWN_USER and verdict.delivery == "failed"
            if permanent_unknown_user and blocking is not None and blocking.enabled:
                outcome.suppress.append((error.server, error.to, error.reason, error.delivery_id))
        return outcome

    async def _delivery(
        self,
        failed: FailedRecipient,
        report: BounceReport,
        verp_ids: list[str],
        single: bool,
        at: float,
    ) -> KnownDelivery | None:
        ids = list(verp_ids)
        header_id = report.original.get(DELIVERY_ID_HEADER).strip()
        if header_id:
            ids.append(header_id)
        message_id = report.original.get("message-id").strip()

        async def find() -> KnownDelivery | None:
            for delivery_id in ids:
                known = await self.deliveries.by_id(delivery_id)
                if known is None:
                    continue
                # A VERP bounce is about its own delivery; with several failed recipients,
                # only the one that matches it (forwarding may have changed a lone recipient).
                if single or known.recipient.lower() == failed.recipient.lower():
                    return known
            if message_id:
                return await self.deliveries.by_message_id(message_id, failed.recipient)
            return None

        return await self._waiting(find, verp_ids, at)

    async def _waiting(
        self,
        find: Callable[[], Awaitable[KnownDelivery | None]],
        verp_ids: list[str],
        at: float,
    ) -> KnownDelivery | None:
        """``find()``'s delivery; while a VERP id is recent, asked again for ``link_wait``."""
        deadline = time.monotonic() + self.link_wait
        while (known := await find()) is None:
            if not _recent(verp_ids, at) or time.monotonic() >= deadline:
                return None
            await asyncio.sleep(LINK_POLL_SECONDS)
        return known

    async def _complaint(
        self, report: BounceReport, verp_ids: list[str], server: str, at: float
    ) -> list[events_pb2.ComplaintReceived]:
        delivery_id = verp_ids[0] if verp_ids else ""
        known = (
            await self._waiting(lambda: self.deliveries.by_id(delivery_id), verp_ids, at)
            if delivery_id
            else None
        )
        complaints = [
            _complaint_event(report, recipient.lower(), delivery_id, known, server, at)
            for recipient in (report.feedback_recipients or [""])
        ]
        rows = [
            [
                datetime.fromtimestamp(at, UTC),
                c.feedback_type,
                c.recipient,
                c.delivery_id,
                c.server,
                c.header_message_id,
                c.subject,
            ]
            for c in complaints
        ]
        await self.store.insert(
            "postline.complaints",
            rows,
            (
                "received",
                "feedback_type",
                "recipient",
                "delivery_id",
                "server",
                "header_message_id",
                "subject",
            ),
        )
        logger.info(
            "%s: %s complaint about %s recorded",
            delivery_id or "-",
            report.feedback_type,
            ", ".join(report.feedback_recipients) or "an unnamed recipient",
        )
        return complaints


def _recent(verp_ids: list[str], at: float) -> bool:
    """A VERP id made moments ago: its delivery's record may still be on its way."""
    made = [t for t in map(id_time, verp_ids) if t is not None]
    return any(at - RECENT_SECONDS <= t <= at + RECENT_SECONDS for t in made)


def _complaint_event(
    report: BounceReport,
    recipient: str,
    delivery_id: str,
    known: KnownDelivery | None,
    server: str,
    at: float,
) -> events_pb2.ComplaintReceived:
    """The complaint as published: the delivery's record where known, else the report's own
    copy of the original's headers."""
    original = report.original
    event = events_pb2.ComplaintReceived(
        event_id=new_id(),
        at=to_timestamp(at),
        feedback_type=report.feedback_type,
        recipient=recipient,
        server=server,
        delivery_id=delivery_id,
        header_message_id=original.get("message-id"),
        envelope_from=_address(original.get("return-path") or original.get("from")),
        subject=original.get("subject"),
        api_data=original.get("x-api-data"),
    )
    if known is not None:
        event.server = known.server or server
        event.recipient = recipient or known.recipient.lower()
        event.message_id = known.message_id
        event.header_message_id = known.header_message_id
        event.envelope_from = known.envelope_from
        event.subject = known.subject
        event.api_user = known.api_user
        event.api_data = known.api_data
        event.trace_id = known.trace_id
    return event


def _error(
    failed: FailedRecipient,
    verdict: Verdict,
    known: KnownDelivery | None,
    report: BounceReport,
    return_path: str,
    at: float,
) -> events_pb2.ErrorClassified:
    """The error-log row: the delivery's record when known, else the bounce's own words."""
    if known is not None:
        delivery = known.as_accepted()
    else:
        original = report.original
        delivery = delivery_pb2.AcceptedDelivery(
            recipient=failed.recipient,
            recipient_domain=failed.recipient.rpartition("@")[2].lower(),
            envelope_from=_address(original.get("return-path") or original.get("from")),
            subject=original.get("subject"),
            api_data=original.get("x-api-data"),
            header_message_id=original.get("message-id"),
        )
    error = error_event(
        delivery,
        verdict.status,  # type: ignore[arg-type]
        at,
        source=events_pb2.ERROR_SOURCE_BOUNCE_MAIL,
        reason=failed.diagnostic or f"bounce mail: {failed.action}",
        permanent=verdict.delivery == "failed",
        reply_code=failed.reply_code,
        enhanced_status=failed.status,
        return_path=return_path,
    )
    if known is not None and known.trace_id:
        error.trace_id = known.trace_id  # the console links the row to the delivery's trace
    return error


def _address(value: str) -> str:
    value = value.strip()
    if "<" in value and ">" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value
