"""Turning one submitted message into deliveries (one per recipient) on RabbitMQ.

Shared by the SMTP relay and the send API, and by the mail Postline sends itself (the weekly
summary): whatever the door, a message is accepted only once every delivery was confirmed by
the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from email.utils import make_msgid

from postline.common.addresses import Address
from postline.common.broker import Broker
from postline.common.broker.connection import BrokerUnavailable
from postline.common.broker.topology import accepted_key, shard_for, urgent_key
from postline.common.events import queued_event
from postline.common.headers import first_values, header_fields
from postline.common.ids import new_id, stable_id
from postline.common.policy import Policy
from postline.common.policy.filters import is_repeatable, normalize_headers
from postline.common.policy.model import PriorityLevel
from postline.common.timeutil import to_timestamp
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)

# How long the queued events of an accepted message are tried again while RabbitMQ is away.
QUEUED_RETRY_SECONDS = 120.0
# How long the queued events the relay publishes after its 250 may wait for others to travel
# with: under load 40-60 share a broker message instead of ~6, read by reports and bounce
# (reports writes what arrived once a second anyway; bench/README.md, "Round 5").
QUEUED_LINGER = 0.1


@dataclass(frozen=True)
class Submission:
    server: str
    api_user: str
    envelope_from: Address | None  # None: the null reverse-path <>
    recipients: list[Address]
    content: bytes
    client_ip: str
    accepted_at: float
    # What the submitter asked of notices (RFC 3461), one entry per recipient (None: nothing);
    # empty: nothing asked for any.
    dsn: Sequence[delivery_pb2.DsnRequest | None] = ()
    is_notice: bool = False  # a notice Postline itself sends (RFC 3464)
    # What a message Postline makes itself comes from (a notice: the delivery and action it
    # is about). Made again for the same cause — its input redelivered after a crash — it
    # keeps its message and delivery ids: one delivery in the log, one queued event counted.
    anchor: str = ""


@dataclass(frozen=True)
class Accepted:
    message_id: str
    deliveries: list[delivery_pb2.AcceptedDelivery]


def prepare_content(content: bytes, hostname: str) -> tuple[bytes, list[delivery_pb2.Header]]:
    """Add a Message-ID if missing; return the content and the headers filters may use."""
    fields = header_fields(content)
    if not any(name.lower() == "message-id" for name, _ in fields):
        message_id = make_msgid(domain=hostname)
        content = f"Message-ID: {message_id}\r\n".encode() + content
        fields.insert(0, ("Message-ID", message_id))
    counts: dict[str, int] = {}
    for name, _ in fields:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    headers = [
        delivery_pb2.Header(name=name, value=value)
        for name, value in fields
        # What occurs, or may occur, several times cannot drive a filter: not carried.
        if counts[name.lower()] == 1 and not is_repeatable(name)
    ]
    return content, headers


async def submit(
    broker: Broker, submission: Submission, hostname: str, policy: Policy | None = None
) -> Accepted:
    """`publish_deliveries`, then `publish_queued`: both done when this returns."""
    accepted = await publish_deliveries(broker, submission, hostname, policy)
    await publish_queued(broker, accepted)
    return accepted


async def publish_deliveries(
    broker: Broker, submission: Submission, hostname: str, policy: Policy | None = None
) -> Accepted:
    """Publish one delivery per recipient; return only after the broker confirmed all of them.

    With the ``policy``, a delivery its priority rules make high goes to its shard's urgent
    queue, ahead of whatever backlog the inbound queue holds (the scheduler decides the
    priority again; this only picks the door).

    Raises ``BrokerUnavailable`` if any publish was not confirmed: the caller answers with a
    temporary failure and the client retries (deliveries confirmed before the failure may then
    be sent twice, the at-least-once norm of SMTP).
    """
    content, headers = prepare_content(submission.content, hostname)
    anchor = submission.anchor
    message_id = stable_id(anchor, "message") if anchor else new_id()
    envelope_from = submission.envelope_from.smtp_form() if submission.envelope_from else ""
    accepted_at = to_timestamp(submission.accepted_at)
    values = first_values((h.name, h.value) for h in headers)
    deliveries = [
        delivery_pb2.AcceptedDelivery(
            delivery_id=stable_id(anchor, "delivery", index) if anchor else new_id(),
            message_id=message_id,
            server=submission.server,
            api_user=submission.api_user,
            envelope_from=envelope_from,
            recipient=rcpt.smtp_form(),
            recipient_domain=rcpt.domain_lower,
            content=content,
            headers=headers,
            subject=values.get("subject", ""),
            api_data=values.get("x-api-data", ""),
            accepted_at=accepted_at,
            client_ip=submission.client_ip,
            header_message_id=values.get("message-id", ""),
            dsn=dsn,
            is_notice=submission.is_notice,
        )
        for index, (rcpt, dsn) in enumerate(
            zip(
                submission.recipients,
                submission.dsn or [None] * len(submission.recipients),
                strict=True,
            )
        )
    ]
    shards = broker.topology.shards
    urgent = _urgent_rule(policy, submission.server, headers)
    # Grouped: the deliveries of messages accepted at the same moment share broker messages
    # (one per shard), each still answered only once the one carrying it was confirmed.
    await _all_or_first_failure(
        broker.publish_grouped(
            (urgent_key if urgent(d.recipient) else accepted_key)(
                shard_for(d.recipient_domain, shards)
            ),
            d,
        )
        for d in deliveries
    )
    return Accepted(message_id, deliveries)


async def _all_or_first_failure(publishes: Iterable[Awaitable[None]]) -> None:
    """Await every publish; at the first failure cancel the others and raise it. The client
    is then told to try again: a publish that went on would deliver a copy of what it resends."""
    awaitables = list(publishes)
    if len(awaitables) == 1:
        # One recipient, the usual message: nothing to cancel beside it, so no task is made
        # (a caller cancelled meanwhile cancels the publish it awaits all the same).
        await awaitables[0]
        return
    tasks = [asyncio.ensure_future(p) for p in awaitables]
    if not tasks:
        return
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in done:
        if (failure := task.exception()) is not None:
            raise failure


def _urgent_rule(
    policy: Policy | None, server_name: str, headers: list[delivery_pb2.Header]
) -> Callable[[str], bool]:
    """Whether the server's priority rules make a recipient's delivery high priority."""
    server = policy.servers.get(server_name) if policy is not None else None
    if server is None or not any(r.level == PriorityLevel.HIGH for r in server.priority):
        return lambda recipient: False
    # Only the fields the rules name are read: only they are normalized (unfolded, decoded).
    named = {rule.header.lower() for rule in server.priority}
    normalized = normalize_headers((h.name, h.value) for h in headers if h.name.lower() in named)
    return lambda recipient: server.priority_for(normalized, recipient) == PriorityLevel.HIGH


async def publish_queued(broker: Broker, accepted: Accepted, *, linger: float = 0.0) -> None:
    """The ``queued`` event of each delivery, for the delivery log. Never raises for the broker:
    the deliveries are safe already, and their later events fill the log in. ``linger``: when
    nobody waits for this (see ``Broker.publish_events``)."""
    events = [queued_event(d) for d in accepted.deliveries]
    # Each try waits for the broker within the publish timeout; a broker that restarts takes
    # longer, so the events are tried again, in the background, for a while (the statistics
    # count deliveries by these events).
    deadline = time.monotonic() + QUEUED_RETRY_SECONDS
    pause = 1.0
    while True:
        try:
            await broker.publish_events(events, linger=linger)
            return
        except BrokerUnavailable as exc:
            if time.monotonic() + pause > deadline:
                logger.warning("%s queued events given up: %s", accepted.message_id, exc)
                return
            logger.info("%s queued events not confirmed yet; trying again", accepted.message_id)
        await asyncio.sleep(pause)
        pause = min(10.0, pause * 2)
