"""Mail forwarding rules: an extra delivery to another address (copy), or a new recipient
(rewrite). Pure: the handlers publish what these functions return.

A delivery made or changed by a rule carries ``forwarded_from``, and such a delivery is never
forwarded again: two rules pointing at each other (a -> b, b -> a) cannot loop, and a copy to
an archive address that itself matches a copy rule does not multiply.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from postline.common.policy import ForwardAction, ForwardingRule, Server
from postline.common.policy.filters import NormalizedHeaders
from postline.scheduler.decisions import headers_of
from postline.v1 import delivery_pb2


@dataclass(frozen=True)
class Copy:
    """Deliver ``copy`` as well (a new delivery of the same message)."""

    rule: ForwardingRule
    copy: delivery_pb2.AcceptedDelivery


@dataclass(frozen=True)
class Rewrite:
    """Deliver ``delivery`` (same id) to the rule's address instead of the original one."""

    rule: ForwardingRule
    delivery: delivery_pb2.AcceptedDelivery


Forwarding = Copy | Rewrite


def forwarding_for(
    server: Server,
    delivery: delivery_pb2.AcceptedDelivery,
    headers: NormalizedHeaders | None = None,
) -> Forwarding | None:
    if delivery.forwarded_from:
        return None
    if headers is None:
        headers = headers_of(delivery)
    rule = server.forwarding_for(headers, delivery.recipient)
    if rule is None:
        return None
    if rule.action == ForwardAction.COPY:
        return Copy(rule, _copy(delivery, rule.to))
    return Rewrite(rule, _rewrite(delivery, rule.to))


def copy_id(delivery_id: str, to: str) -> str:
    """The copy's delivery id, derived from the original's: a copy made twice (the original
    re-delivered after a crash) is the same delivery, which keeps reports and traces tidy."""
    return hashlib.sha256(f"{delivery_id}:copy:{to.lower()}".encode()).hexdigest()[:32]


def _readdressed(delivery: delivery_pb2.AcceptedDelivery, to: str) -> delivery_pb2.AcceptedDelivery:
    new = delivery_pb2.AcceptedDelivery()
    new.CopyFrom(delivery)
    new.recipient = to
    new.recipient_domain = to.rsplit("@", 1)[1].lower()
    return new


def _copy(delivery: delivery_pb2.AcceptedDelivery, to: str) -> delivery_pb2.AcceptedDelivery:
    copy = _readdressed(delivery, to)
    copy.delivery_id = copy_id(delivery.delivery_id, to)
    copy.forwarded_from = delivery.delivery_id
    return copy


def _rewrite(delivery: delivery_pb2.AcceptedDelivery, to: str) -> delivery_pb2.AcceptedDelivery:
    rewritten = _readdressed(delivery, to)
    rewritten.original_recipient = delivery.recipient
    rewritten.forwarded_from = delivery.delivery_id
    return rewritten
