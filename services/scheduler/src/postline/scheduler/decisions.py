"""What the policy says about a delivery: pure functions of the delivery, the policy and now.

Each returns a typed outcome the handlers act on; none does I/O, so every rule is unit-tested
without a broker and with any clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from postline.common.policy import Server
from postline.common.policy.filters import NormalizedHeaders, normalize_headers
from postline.v1 import delivery_pb2
from postline.v1.delivery_pb2 import Priority, TlsMode

PRIORITY_LEVELS: dict[str, Priority.ValueType] = {
    "high": delivery_pb2.PRIORITY_HIGH,
    "normal": delivery_pb2.PRIORITY_NORMAL,
    "low": delivery_pb2.PRIORITY_LOW,
}
TLS_MODES: dict[str, TlsMode.ValueType] = {
    "none": delivery_pb2.TLS_MODE_NONE,
    "opportunistic": delivery_pb2.TLS_MODE_OPPORTUNISTIC,
    "required": delivery_pb2.TLS_MODE_REQUIRED,
}


@dataclass(frozen=True)
class Route:
    host: str  # empty: the recipient domain's MX
    port: int
    tls: TlsMode.ValueType


@dataclass(frozen=True)
class Dispatch:
    """Send now: a task for the senders."""

    task: delivery_pb2.DeliveryTask


@dataclass(frozen=True)
class Retry:
    not_before: float


@dataclass(frozen=True)
class Expired:
    """Temporary failures outlasted the resend period (error status 3)."""

    reason: str


@dataclass(frozen=True)
class Final:
    succeeded: bool


ResultDecision = Retry | Expired | Final


def _headers(delivery: delivery_pb2.AcceptedDelivery) -> NormalizedHeaders:
    return normalize_headers((h.name, h.value) for h in delivery.headers)


def priority_for(server: Server, delivery: delivery_pb2.AcceptedDelivery) -> Priority.ValueType:
    return PRIORITY_LEVELS[server.priority_for(_headers(delivery), delivery.recipient)]


def route_for(server: Server, domain: str) -> Route:
    route = server.route_for(domain)
    if route is None:
        return Route("", 25, delivery_pb2.TLS_MODE_OPPORTUNISTIC)
    return Route(route.to.host, route.to.port, TLS_MODES[route.tls])


def retry_settings(
    server: Server, delivery: delivery_pb2.AcceptedDelivery
) -> tuple[timedelta, timedelta]:
    """(interval, resend period): the first matching profile, else the server's defaults."""
    schedule = server.retry_for(_headers(delivery), delivery.recipient)
    return schedule.interval, schedule.resend_period


def first_task(
    server: Server, delivery: delivery_pb2.AcceptedDelivery, shard: int, now: float
) -> delivery_pb2.DeliveryTask:
    route = route_for(server, delivery.recipient_domain)
    _, resend_period = retry_settings(server, delivery)
    task = delivery_pb2.DeliveryTask(
        delivery=delivery,
        attempt=1,
        priority=priority_for(server, delivery),
        route_host=route.host,
        route_port=route.port,
        tls=route.tls,
        speed_key=delivery.recipient_domain,
        shard=shard,
    )
    task.first_attempt_at.FromNanoseconds(int(now * 1e9))
    task.expires_at.FromNanoseconds(int((now + resend_period.total_seconds()) * 1e9))
    return task


def after_result(server: Server, result: delivery_pb2.DeliveryResult, now: float) -> ResultDecision:
    if result.outcome == delivery_pb2.OUTCOME_SUCCEEDED:
        return Final(succeeded=True)
    if result.outcome == delivery_pb2.OUTCOME_FAILED:
        return Final(succeeded=False)
    interval, _ = retry_settings(server, result.task.delivery)
    next_attempt = now + interval.total_seconds()
    expires = result.task.expires_at.ToNanoseconds() / 1e9
    if next_attempt > expires:
        return Expired(
            f"resend period ended after {result.task.attempt} attempts; last reply: "
            f"{result.reply_code} {result.enhanced_status} {result.reply_text}".strip()
        )
    return Retry(not_before=next_attempt)


def next_task(result: delivery_pb2.DeliveryResult) -> delivery_pb2.DeliveryTask:
    task = delivery_pb2.DeliveryTask()
    task.CopyFrom(result.task)
    task.attempt += 1
    return task
