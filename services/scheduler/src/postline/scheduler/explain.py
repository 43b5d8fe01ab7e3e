"""What the policy does with one delivery, and why: ``postline policy explain`` (offline, from
the file) and the admin API's ``Explain`` (a running scheduler, which also knows the
suppression list and MX hosts) both answer with :func:`explain`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from postline.common.policy import Filter, Server, SpeedLimit
from postline.common.policy.filters import first_match, normalize_headers
from postline.common.policy.units import format_duration
from postline.common.timeutil import to_timestamp
from postline.common.tls_modes import tls_mode_name
from postline.scheduler import decisions
from postline.v1 import scheduler_pb2


@dataclass
class Explanation:
    server: str
    recipient: str
    at: str  # ISO 8601, UTC
    priority: str
    hold_until: str | None  # ISO 8601 in the rule's time zone
    speed_rule: str
    speed_key: str
    route: str
    retry_profile: str
    forwarding: str
    shard: int
    suppressed: bool
    suppression_checked: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_proto(self) -> scheduler_pb2.ExplainResponse:
        response = scheduler_pb2.ExplainResponse(
            server=self.server,
            priority=self.priority,
            speed_rule=self.speed_rule,
            speed_key=self.speed_key,
            route=self.route,
            retry_profile=self.retry_profile,
            forwarding=self.forwarding,
            shard=self.shard,
            suppressed=self.suppressed,
            suppression_checked=self.suppression_checked,
            reasons=self.reasons,
        )
        if self.hold_until is not None:
            response.hold_until.CopyFrom(
                to_timestamp(datetime.fromisoformat(self.hold_until).timestamp())
            )
        return response


def _filter_text(rule: Filter) -> str:
    return f"{rule.header} ~ /{rule.pattern.pattern}/"


def _index(rules: Iterable[object], rule: object) -> int:
    return next(i for i, candidate in enumerate(rules) if candidate is rule)


def describe_limit(limit: SpeedLimit) -> str:
    parts = [f"connections {limit.connections}"]
    if limit.interval:
        parts.append(f"interval {format_duration(limit.interval)}")
    if limit.rate is not None:
        parts.append(f"rate {limit.rate}")
    parts.append(f"messages_per_connection {limit.messages_per_connection}")
    parts.append(f"source_ips {limit.source_ips}")
    return ", ".join(parts)


def speed_rule_name(server: Server, limit: SpeedLimit) -> str:
    if limit.rule is not None:
        return f"speed[{limit.rule}]"
    default = next((i for i, rule in enumerate(server.speed) if rule.is_default), None)
    return f'speed[{default}] ("*")' if default is not None else "built-in defaults"


def explain(
    server_name: str,
    server: Server,
    recipient: str,
    headers: Mapping[str, str],
    at: datetime,
    *,
    shards: int,
    mx_hosts: Iterable[str] = (),
    suppressed: bool | None = None,
) -> Explanation:
    """``suppressed`` None: the suppression list was not consulted (offline)."""
    normalized = normalize_headers(headers)
    domain = recipient.rsplit("@", 1)[-1].lower()
    reasons: list[str] = []

    if not server.blocking.enabled:
        suppressed = False
        reasons.append("blocking: delivery blocking is disabled for this server")
    elif suppressed:
        reasons.append(
            "blocking: the recipient is on the suppression list: it fails at once with error "
            "status 10 (blocked address) and is never sent"
        )
    elif suppressed is None:
        reasons.append("blocking: the suppression list was not consulted (offline)")
    else:
        reasons.append("blocking: the recipient is not on the suppression list")

    forwarding = ""
    forward_rule = server.forwarding_for(normalized, recipient)
    if forward_rule is not None:
        i = _index(server.forwarding, forward_rule)
        forwarding = f"{forward_rule.action.value} to {forward_rule.to}"
        what = (
            "an extra delivery goes"
            if forward_rule.action.value == "copy"
            else "the recipient is replaced and the delivery goes"
        )
        reasons.append(
            f"forwarding: forwarding[{i}] ({_filter_text(forward_rule)}) matches: {what} to "
            f"{forward_rule.to} (a forwarded delivery is not forwarded again)"
        )
    else:
        reasons.append("forwarding: no rule matches")

    priority_rule = first_match(server.priority, normalized, recipient)
    priority = priority_rule.level.value if priority_rule else "normal"
    if priority_rule is not None:
        i = _index(server.priority, priority_rule)
        reasons.append(
            f"priority {priority}: priority[{i}] ({_filter_text(priority_rule)}) is the first "
            "matching filter"
        )
    else:
        reasons.append("priority normal: no priority filter matches (the default)")

    hold_until: str | None = None
    hours = server.prohibited_hours_for(normalized, recipient)
    if hours is None:
        reasons.append("prohibited hours: no filter matches; sent at once")
    else:
        i = _index(server.prohibited_hours, hours)
        windows = ", ".join(str(w) for w in hours.windows)
        days = ", ".join(d.value for d in sorted(hours.days, key=lambda d: d.number))
        local = at.astimezone(hours.timezone)
        release = hours.release_at(at)
        what = f"prohibited_hours[{i}] ({_filter_text(hours)}; {hours.timezone.key}, {days}: "
        what += f"{windows})"
        if release is None:
            reasons.append(
                f"prohibited hours: {what} matches, but {local.isoformat()} is outside its "
                "windows; sent at once"
            )
        else:
            end = release.astimezone(hours.timezone)
            hold_until = end.isoformat()
            reasons.append(
                f"prohibited hours: {what} matches and {local.isoformat()} is inside a window: "
                f"held until {hold_until}, then released at the destination's speed, spread "
                "so the window's end is no burst"
            )

    route = decisions.route_for(server, domain)
    if route.host:
        policy_route = server.route_for(domain)
        i = _index(server.routes, policy_route)
        tls = tls_mode_name(route.tls)
        route_text = f"{route.host}:{route.port} (tls {tls})"
        reasons.append(f"route: routes[{i}] matches {domain}: sent to {route_text}, not its MX")
    else:
        route_text = f"MX of {domain}"
        reasons.append(f"route: no route matches {domain}: sent to its MX hosts")

    hosts = tuple(mx_hosts) or decisions.mx_hosts_for_rules(route)
    limit = server.speed_for(domain, hosts)
    rule_name = speed_rule_name(server, limit)
    shard = decisions.owner_shard(limit, domain, shards)
    shared = f"shared by group {limit.group}" if limit.group else f"for {domain} alone"
    reasons.append(
        f"speed: {rule_name} applies ({shared}, key {limit.key}, scheduler shard {shard}): "
        f"{describe_limit(limit)}"
    )
    if server.uses_mx_rules and not hosts:
        reasons.append(
            "speed: rules written with mx: were not evaluated (no MX hosts known; give them "
            "to check those rules)"
        )

    schedule = server.retry_for(normalized, recipient)
    profile = first_match(server.retry.profiles, normalized, recipient)
    if profile is not None:
        i = _index(server.retry.profiles, profile)
        retry_profile = f"retry.profiles[{i}]"
        why = f"{retry_profile} ({_filter_text(profile)}) matches"
    else:
        retry_profile = "retry"
        why = "no retry profile matches: the server's defaults"
    reasons.append(
        f"retry: {why}: a temporary failure is retried every "
        f"{format_duration(schedule.interval)} (or later when the reply asks) until "
        f"{format_duration(schedule.resend_period)} after acceptance, then fails with error "
        "status 3"
    )

    return Explanation(
        server=server_name,
        recipient=recipient,
        at=at.astimezone(UTC).isoformat(),
        priority=priority,
        hold_until=hold_until,
        speed_rule=rule_name,
        speed_key=limit.key,
        route=route_text,
        retry_profile=retry_profile,
        forwarding=forwarding,
        shard=shard,
        suppressed=bool(suppressed),
        suppression_checked=suppressed is not None,
        reasons=reasons,
    )
