"""What the policy says about a delivery: pure functions of the delivery, the policy and now.

Each returns a typed outcome the handlers act on; none does I/O, so every rule is unit-tested
without a broker and with any clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from postline.common.broker.topology import shard_for
from postline.common.policy import Server, SpeedLimit
from postline.common.policy.filters import NormalizedHeaders, normalize_headers
from postline.common.timeutil import from_timestamp, to_timestamp
from postline.common.tls_modes import route_tls
from postline.scheduler.retry_after import retry_after
from postline.v1 import delivery_pb2
from postline.v1.delivery_pb2 import Priority, TlsMode

PRIORITY_LEVELS: dict[str, Priority.ValueType] = {
    "high": delivery_pb2.PRIORITY_HIGH,
    "normal": delivery_pb2.PRIORITY_NORMAL,
    "low": delivery_pb2.PRIORITY_LOW,
}


@dataclass(frozen=True)
class Route:
    host: str  # empty: the recipient domain's MX
    port: int
    tls: TlsMode.ValueType


@dataclass(frozen=True)
class Retry:
    not_before: float
    asked: float | None = None  # the wait the reply asked for, when it said one


@dataclass(frozen=True)
class Expired:
    """Temporary failures outlasted the resend period (error status 3)."""

    reason: str


@dataclass(frozen=True)
class Final:
    succeeded: bool


ResultDecision = Retry | Expired | Final


def headers_of(delivery: delivery_pb2.AcceptedDelivery) -> NormalizedHeaders:
    """The headers the policy's filters see. A handler that takes several decisions about one
    delivery normalizes them once and passes them on (``headers=``)."""
    return normalize_headers((h.name, h.value) for h in delivery.headers)


def priority_for(
    server: Server,
    delivery: delivery_pb2.AcceptedDelivery,
    headers: NormalizedHeaders | None = None,
) -> Priority.ValueType:
    if headers is None:
        headers = headers_of(delivery)
    return PRIORITY_LEVELS[server.priority_for(headers, delivery.recipient)]


def route_for(server: Server, domain: str) -> Route:
    route = server.route_for(domain)
    if route is None:
        return Route("", 25, route_tls(None))
    return Route(route.to.host, route.to.port, route_tls(route))


def mx_hosts_for_rules(route: Route) -> tuple[str, ...]:
    """The hosts ``mx:`` speed rules see without a lookup: a route's fixed server."""
    return (route.host,) if route.host else ()


def retry_settings(
    server: Server,
    delivery: delivery_pb2.AcceptedDelivery,
    headers: NormalizedHeaders | None = None,
) -> tuple[timedelta, timedelta]:
    """(interval, resend period): the first matching profile, else the server's defaults."""
    if headers is None:
        headers = headers_of(delivery)
    schedule = server.retry_for(headers, delivery.recipient)
    return schedule.interval, schedule.resend_period


def first_task(
    server: Server,
    delivery: delivery_pb2.AcceptedDelivery,
    shard: int,
    now: float,
    headers: NormalizedHeaders | None = None,
    route: Route | None = None,
) -> delivery_pb2.DeliveryTask:
    """The first attempt. The resend period runs from acceptance (the design's definition),
    so time spent held or throttled counts against it only once retries start. ``route``:
    the recipient domain's, when the caller worked it out already."""
    if headers is None:
        headers = headers_of(delivery)
    if route is None:
        route = route_for(server, delivery.recipient_domain)
    _, resend_period = retry_settings(server, delivery, headers)
    accepted = from_timestamp(delivery.accepted_at) if delivery.HasField("accepted_at") else now
    task = delivery_pb2.DeliveryTask(
        delivery=delivery,
        attempt=1,
        priority=priority_for(server, delivery, headers),
        route_host=route.host,
        route_port=route.port,
        tls=route.tls,
        shard=shard,
    )
    task.first_attempt_at.CopyFrom(to_timestamp(now))
    task.expires_at.CopyFrom(to_timestamp(accepted + resend_period.total_seconds()))
    return task


def after_result(server: Server, result: delivery_pb2.DeliveryResult, now: float) -> ResultDecision:
    if result.outcome == delivery_pb2.OUTCOME_SUCCEEDED:
        return Final(succeeded=True)
    if result.outcome == delivery_pb2.OUTCOME_FAILED:
        return Final(succeeded=False)
    interval, _ = retry_settings(server, result.task.delivery)
    asked = retry_after(result.reply_text)
    wait = max(interval.total_seconds(), asked or 0.0)
    next_attempt = now + wait
    expires = from_timestamp(result.task.expires_at)
    if next_attempt > expires:
        return Expired(
            f"resend period ended after {result.task.attempt} attempts; last reply: "
            f"{result.reply_code} {result.enhanced_status} {result.reply_text}".strip()
        )
    return Retry(not_before=next_attempt, asked=asked)


def next_task(result: delivery_pb2.DeliveryResult) -> delivery_pb2.DeliveryTask:
    task = delivery_pb2.DeliveryTask()
    task.CopyFrom(result.task)
    task.attempt += 1
    # The next attempt needs a speed grant of its own.
    task.ClearField("grant_id")
    task.ClearField("granted_at")
    task.ClearField("source_ip")
    task.handovers = 0
    return task


def hold_until(
    server: Server,
    task: delivery_pb2.DeliveryTask,
    now: float,
    headers: NormalizedHeaders | None = None,
) -> float | None:
    """When the delivery's prohibited hours end, if ``now`` is inside them."""
    delivery = task.delivery
    if headers is None:
        headers = headers_of(delivery)
    end = server.hold_until(headers, delivery.recipient, datetime.fromtimestamp(now, tz=UTC))
    return end.timestamp() if end is not None else None


def release_spread(delivery_id: str, spread: float) -> float:
    """A delivery's place in the spread after a hold ends (0 <= x < spread), fixed per
    delivery so a re-evaluated hold gives the same answer. Deliveries held overnight come back
    spread over ``spread`` seconds instead of all at 08:00; the speed limits then pace them."""
    if spread <= 0:
        return 0.0
    digest = hashlib.sha256(delivery_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * spread


def owner_shard(limit: SpeedLimit, domain: str, shards: int) -> int:
    """The shard that enforces a speed key. A domain's own key lives on the domain's shard
    (where ingress sends it); a group's key on one shard for the whole group, so a limit
    shared by domains of several shards is still counted in one place."""
    if limit.group is not None:
        return shard_for(limit.key, shards)
    return shard_for(domain, shards)
