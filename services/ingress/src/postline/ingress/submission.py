"""Turning one submitted message into deliveries (one per recipient) on RabbitMQ.

Shared by the SMTP relay and the send API: whatever the door, a message is accepted only once
every delivery was confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import make_msgid

from postline.common.addresses import Address
from postline.common.broker import Broker
from postline.common.broker.connection import BrokerUnavailable
from postline.common.broker.topology import DELIVERY_EVENT_KEY, accepted_key, shard_for
from postline.common.ids import new_id
from postline.common.telemetry import current_trace_id
from postline.common.timeutil import to_timestamp
from postline.v1 import delivery_pb2, events_pb2

logger = logging.getLogger(__name__)

# Headers that occur several times cannot drive filters (see the design), so they are not carried.
_REPEATING = frozenset({"received", "dkim-signature", "authentication-results", "comments"})


@dataclass(frozen=True)
class Submission:
    server: str
    api_user: str
    envelope_from: Address | None  # None: the null reverse-path <>
    recipients: list[Address]
    content: bytes
    client_ip: str
    accepted_at: float


@dataclass(frozen=True)
class Accepted:
    message_id: str
    deliveries: list[delivery_pb2.AcceptedDelivery]


def prepare_content(content: bytes, hostname: str) -> tuple[bytes, list[delivery_pb2.Header]]:
    """Add a Message-ID if missing; return the content and the headers filters may use."""
    parsed = BytesHeaderParser(policy=compat32).parsebytes(content)
    if parsed.get("Message-ID") is None:
        content = f"Message-ID: {make_msgid(domain=hostname)}\r\n".encode() + content
        parsed = BytesHeaderParser(policy=compat32).parsebytes(content)
    counts: dict[str, int] = {}
    for name in parsed.keys():
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    headers = [
        delivery_pb2.Header(name=name, value=str(value))
        for name, value in parsed.items()
        if counts[name.lower()] == 1 and name.lower() not in _REPEATING
    ]
    return content, headers


def _header(headers: list[delivery_pb2.Header], name: str) -> str:
    lname = name.lower()
    return next((h.value for h in headers if h.name.lower() == lname), "")


async def submit(broker: Broker, submission: Submission, hostname: str) -> Accepted:
    """Publish one delivery per recipient; return only after the broker confirmed all of them.

    Raises ``BrokerUnavailable`` if any publish was not confirmed: the caller answers with a
    temporary failure and the client retries (deliveries confirmed before the failure may then
    be sent twice, the at-least-once norm of SMTP).
    """
    content, headers = prepare_content(submission.content, hostname)
    message_id = new_id()
    envelope_from = submission.envelope_from.smtp_form() if submission.envelope_from else ""
    accepted_at = to_timestamp(submission.accepted_at)
    deliveries = [
        delivery_pb2.AcceptedDelivery(
            delivery_id=new_id(),
            message_id=message_id,
            server=submission.server,
            api_user=submission.api_user,
            envelope_from=envelope_from,
            recipient=rcpt.smtp_form(),
            recipient_domain=rcpt.domain.lower(),
            content=content,
            headers=headers,
            subject=_header(headers, "Subject"),
            api_data=_header(headers, "X-Api-Data"),
            accepted_at=accepted_at,
            client_ip=submission.client_ip,
            header_message_id=_header(headers, "Message-ID"),
        )
        for rcpt in submission.recipients
    ]
    shards = broker.topology.shards
    await asyncio.gather(
        *(
            broker.publish(accepted_key(shard_for(d.recipient_domain, shards)), d)
            for d in deliveries
        )
    )
    await _publish_queued(broker, deliveries)
    return Accepted(message_id, deliveries)


async def _publish_queued(broker: Broker, deliveries: list[delivery_pb2.AcceptedDelivery]) -> None:
    trace_id = current_trace_id()
    events = [
        events_pb2.DeliveryEvent(
            event_id=new_id(),
            delivery_id=d.delivery_id,
            message_id=d.message_id,
            status=events_pb2.DELIVERY_STATUS_QUEUED,
            at=d.accepted_at,
            accepted_at=d.accepted_at,
            server=d.server,
            api_user=d.api_user,
            envelope_from=d.envelope_from,
            recipient=d.recipient,
            recipient_domain=d.recipient_domain,
            subject=d.subject,
            api_data=d.api_data,
            header_message_id=d.header_message_id,
            trace_id=trace_id,
        )
        for d in deliveries
    ]
    try:
        await asyncio.gather(*(broker.publish(DELIVERY_EVENT_KEY, e) for e in events))
    except BrokerUnavailable:
        # The deliveries themselves are safe; their later events will fill the delivery log.
        logger.warning("%s queued events not confirmed", deliveries[0].message_id)
