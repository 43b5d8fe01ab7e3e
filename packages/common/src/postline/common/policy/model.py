"""The policy file (postline.yaml) as pydantic models.

Key names are the product's (see postline.example.yaml); every model forbids unknown keys so a
misspelling is an error, not a silently ignored setting. Models are frozen: a loaded policy is
shared by handlers and replaced whole on reload.

Rule lists (speed, routes, priority, prohibited hours, retry profiles, forwarding) are searched
in file order and the first match wins; the ``*`` speed rule is the exception (see
:mod:`postline.common.policy.speed`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dt_time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from postline.common.policy.base import (
    Loc,
    PolicyIssues,
    PolicyModel,
    dotted,
    find_duplicates,
    raise_issues,
)
from postline.common.policy.console import Console, Language
from postline.common.policy.cross_checks import POLICY_CHECKS
from postline.common.policy.fields import (
    ANY_NETWORK,
    Argon2Field,
    DestinationField,
    Domain,
    DomainPatternField,
    Duration,
    Email,
    IPAddress,
    IPAddressValue,
    IPNetwork,
    Name,
    RateValue,
    SecretRefField,
    Size,
    TimeOfDay,
    TimeZone,
    Url,
    UserName,
    Version,
    Weekday,
    in_networks,
)
from postline.common.policy.filters import Filter, Headers, first_match
from postline.common.policy.prohibited_hours import ProhibitedHours
from postline.common.policy.secrets import SecretRef
from postline.common.policy.speed import SpeedLimit, SpeedRule, SpeedTable
from postline.common.policy.units import Rate

logger = logging.getLogger(__name__)


class PriorityLevel(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class TlsMode(StrEnum):
    NONE = "none"
    OPPORTUNISTIC = "opportunistic"
    REQUIRED = "required"


class ForwardAction(StrEnum):
    COPY = "copy"  # an extra delivery to `to`, the original one goes on
    REWRITE = "rewrite"  # the recipient becomes `to`


class DkimAlgorithm(StrEnum):
    RSA_SHA256 = "rsa-sha256"
    ED25519_SHA256 = "ed25519-sha256"


class WebhookEvent(StrEnum):
    """What an event webhook can subscribe to (``servers.<name>.webhooks[].events``)."""

    QUEUED = "queued"
    DEFERRED = "deferred"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BOUNCED = "bounced"  # a bounce mail came back after the destination accepted
    COMPLAINED = "complained"  # a feedback report (ARF) about the mail
    SUPPRESSED = "suppressed"  # the recipient was added to the suppression list


# --- API users and the relay ---------------------------------------------------------------


class ApiUser(PolicyModel):
    """Credentials for SMTP AUTH and the send/reports API. Names are unique across the whole
    file, so a username alone identifies its server (see :meth:`Policy.find_api_user`)."""

    name: UserName
    secret: Argon2Field
    allowed_ips: tuple[IPNetwork, ...] = ANY_NETWORK
    language: Language | None = None  # of the notices about this user's mail (None: English)

    def verify(self, secret: str) -> bool:
        """Whether ``secret`` is this user's. Slow by design (argon2): run it off the loop."""
        return self.secret.verify(secret)

    def ip_allowed(self, ip: str | IPAddressValue) -> bool:
        return in_networks(ip, self.allowed_ips)


class Relay(PolicyModel):
    """The SMTP relay's reception settings for one server."""

    max_connections: int = Field(default=100, ge=1)
    max_message_size: Size = 10 * 1024 * 1024
    max_recipients: int = Field(default=1000, ge=1)
    rate_per_ip: RateValue = Rate(100, 1)
    allowed_ips: tuple[IPNetwork, ...] = ANY_NETWORK
    relay_without_auth_from: tuple[IPNetwork, ...] = ()
    plain_auth_on_loopback: bool = True

    def accepts_connection_from(self, ip: str | IPAddressValue) -> bool:
        return in_networks(ip, self.allowed_ips)

    def relays_without_auth_for(self, ip: str | IPAddressValue) -> bool:
        return in_networks(ip, self.relay_without_auth_from)


class Blocking(PolicyModel):
    """Delivery blocking: unknown users are suppressed automatically."""

    enabled: bool = True
    expire_after: Duration = timedelta(0)

    @property
    def expiry(self) -> timedelta | None:
        """How long a suppression lasts; None = forever (``expire_after: 0s``)."""
        return self.expire_after or None


# --- routes, filters' rules -----------------------------------------------------------------


class Route(PolicyModel):
    """Deliver the matching domains to a fixed server instead of their MX."""

    match: tuple[DomainPatternField, ...]
    to: DestinationField
    tls: TlsMode = TlsMode.OPPORTUNISTIC

    @model_validator(mode="after")
    def _check(self) -> Route:
        if not self.match:
            raise PolicyIssues([(("match",), "needs at least one pattern")])
        return self

    def applies_to(self, domain: str) -> bool:
        return any(p.matches(domain) for p in self.match)


class PriorityRule(Filter):
    level: PriorityLevel


class RetryProfile(Filter):
    interval: Duration | None = None
    resend_period: Duration | None = None
    # Unset: the server's notices.delay_warning_after; null: no delay warning (bulk mail).
    delay_warning_after: Duration | None = None

    @property
    def sets_delay_warning(self) -> bool:
        return "delay_warning_after" in self.model_fields_set


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    interval: timedelta  # between attempts after a temporary failure
    resend_period: timedelta  # after this since acceptance, the delivery fails (status 3)
    delay_warning_after: timedelta | None = None  # one delay notice after this; None = never


class Retry(PolicyModel):
    interval: Duration = timedelta(minutes=10)
    resend_period: Duration = timedelta(hours=4)
    profiles: tuple[RetryProfile, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Retry:
        issues: list[tuple[Loc, str]] = []
        if not self.interval:
            issues.append((("interval",), "the retry interval must be positive"))
        for i, profile in enumerate(self.profiles):
            if profile.interval is not None and not profile.interval:
                issues.append((("profiles", i, "interval"), "the retry interval must be positive"))
        raise_issues(issues)
        return self


class ForwardingRule(Filter):
    action: ForwardAction
    to: Email


class DkimKey(PolicyModel):
    domain: Domain
    selector: Domain  # a selector is one or more DNS labels
    algorithm: DkimAlgorithm = DkimAlgorithm.RSA_SHA256
    key: SecretRefField


# --- telling the sender -------------------------------------------------------------------


class Notices(PolicyModel):
    """RFC 3464 notices Postline sends to a delivery's envelope sender."""

    model_config = ConfigDict(populate_by_name=True)

    from_: Email | None = Field(default=None, alias="from")  # None: mailer-daemon@<return path>
    delay_warning_after: Duration | None = timedelta(minutes=30)  # None: no delay warnings
    failure: bool = True
    success: bool = False  # NOTIFY=SUCCESS asks for one per recipient whatever this says


class Webhook(PolicyModel):
    """One endpoint that receives events as signed JSON (Standard Webhooks)."""

    url: Url
    events: frozenset[WebhookEvent] = frozenset(WebhookEvent)
    secret: SecretRefField

    @model_validator(mode="after")
    def _check(self) -> Webhook:
        if not self.events:
            raise PolicyIssues([(("events",), "needs at least one event type")])
        return self

    def wants(self, event: str) -> bool:
        return event in self.events


class WeeklySummary(PolicyModel):
    """A summary mail of the week to ``to`` on ``day`` at ``time`` in ``timezone``."""

    to: tuple[Email, ...]
    day: Weekday = Weekday.MON
    time: TimeOfDay = dt_time(9, 0)
    timezone: TimeZone = ZoneInfo("UTC")

    @model_validator(mode="after")
    def _check(self) -> WeeklySummary:
        if not self.to:
            raise PolicyIssues([(("to",), "needs at least one address")])
        return self


class InboundFormat(StrEnum):
    PARSED = "parsed"  # envelope, headers, text and HTML bodies, attachments (base64)
    RAW = "raw"  # envelope and the message as received (base64)


class Inbound(PolicyModel):
    """Ordinary mail for ``domain`` that the receiving server accepts and POSTs to ``url``."""

    domain: Domain
    url: Url
    secret: SecretRefField
    format: InboundFormat = InboundFormat.PARSED


# --- server -----------------------------------------------------------------------------------


class Server(PolicyModel):
    """One sending configuration with its API users and policies."""

    api_users: tuple[ApiUser, ...] = ()
    relay: Relay = Relay()
    source_ip_pool: Name | None = None  # None: let the OS pick the source address
    return_path_domain: Domain
    strip_received_headers: bool = False
    csv_download: bool = True
    blocking: Blocking = Blocking()
    speed: tuple[SpeedRule, ...] = ()
    routes: tuple[Route, ...] = ()
    # Domains whose mail goes only over STARTTLS with a certificate valid for the MX host
    # (routes say it per route with `tls: required`); otherwise TLS is opportunistic.
    require_tls: tuple[DomainPatternField, ...] = ()
    priority: tuple[PriorityRule, ...] = ()
    prohibited_hours: tuple[ProhibitedHours, ...] = ()
    retry: Retry = Retry()
    forwarding: tuple[ForwardingRule, ...] = ()
    dkim: tuple[DkimKey, ...] = ()
    notices: Notices = Notices()
    webhooks: tuple[Webhook, ...] = ()
    weekly_summary: WeeklySummary | None = None

    _speed: SpeedTable = PrivateAttr()
    _dkim_by_domain: dict[str, DkimKey] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Server:
        issues: list[tuple[Loc, str]] = []
        find_duplicates(
            issues, ((("api_users", i, "name"), u.name) for i, u in enumerate(self.api_users))
        )
        find_duplicates(
            issues,
            ((("dkim", i, "domain"), k.domain) for i, k in enumerate(self.dkim)),
            "only one key per domain",
        )
        defaults = [i for i, rule in enumerate(self.speed) if rule.is_default]
        for i in defaults[1:]:
            issues.append(
                (("speed", i, "match"), f'a second "*" rule (the first is speed[{defaults[0]}])')
            )
        find_duplicates(
            issues,
            ((("speed", i, "group"), r.group) for i, r in enumerate(self.speed) if r.group),
            "a group is one shared limit: give it one rule",
        )
        find_duplicates(
            issues,
            ((("webhooks", i, "url"), w.url) for i, w in enumerate(self.webhooks)),
            "one entry per URL: list every event it wants there",
        )
        raise_issues(issues)
        self._speed = SpeedTable.build(self.speed)
        self._dkim_by_domain = {k.domain: k for k in self.dkim}
        return self

    # The questions the services ask. `headers` may be a Mapping or an email.message.Message;
    # `recipient` is the envelope recipient.

    @property
    def _speed_table(self) -> SpeedTable:
        # ``self._speed``, read from pydantic's store of private values directly: the plain
        # attribute goes through ``BaseModel.__getattr__`` (1.8 against 0.2 µs), and the
        # scheduler asks twice per delivery, the sender once per attempt.
        return self.__pydantic_private__["_speed"]  # type: ignore[index]

    @property
    def uses_mx_rules(self) -> bool:
        """Whether speed rules match MX hosts, so the scheduler must know them."""
        return self._speed_table.uses_mx

    def speed_for(self, domain: str, mx_hosts: Iterable[str] = ()) -> SpeedLimit:
        """The limits for a recipient domain (see :mod:`postline.common.policy.speed`):
        the first non-``*`` rule that matches the domain, or one of ``mx_hosts`` for an ``mx``
        rule, else the ``*`` rule."""
        return self._speed_table.limit_for(domain, mx_hosts)

    def route_for(self, domain: str) -> Route | None:
        return next((r for r in self.routes if r.applies_to(domain)), None)

    def requires_tls(self, domain: str) -> bool:
        """Whether ``require_tls`` names the recipient domain (routes carry their own ``tls``)."""
        return any(p.matches(domain) for p in self.require_tls)

    def priority_for(self, headers: Headers, recipient: str) -> PriorityLevel:
        rule = first_match(self.priority, headers, recipient)
        return rule.level if rule else PriorityLevel.NORMAL

    def prohibited_hours_for(self, headers: Headers, recipient: str) -> ProhibitedHours | None:
        return first_match(self.prohibited_hours, headers, recipient)

    def hold_until(self, headers: Headers, recipient: str, now: datetime) -> datetime | None:
        """When a delivery may go if ``now`` is inside its prohibited hours, else None."""
        rule = self.prohibited_hours_for(headers, recipient)
        return rule.release_at(now) if rule else None

    def retry_for(self, headers: Headers, recipient: str) -> RetrySchedule:
        schedule = RetrySchedule(
            self.retry.interval, self.retry.resend_period, self.notices.delay_warning_after
        )
        profile = first_match(self.retry.profiles, headers, recipient)
        if profile is None:
            return schedule
        return RetrySchedule(
            interval=profile.interval if profile.interval is not None else schedule.interval,
            resend_period=(
                profile.resend_period
                if profile.resend_period is not None
                else schedule.resend_period
            ),
            delay_warning_after=(
                profile.delay_warning_after
                if profile.sets_delay_warning
                else schedule.delay_warning_after
            ),
        )

    @property
    def notices_from(self) -> str:
        """The From of the notices this server sends."""
        return self.notices.from_ or f"mailer-daemon@{self.return_path_domain}"

    def forwarding_for(self, headers: Headers, recipient: str) -> ForwardingRule | None:
        return first_match(self.forwarding, headers, recipient)

    def dkim_for(self, from_domain: str) -> DkimKey | None:
        # Read from pydantic's private values directly, as ``_speed_table``: the sender asks
        # once per attempt.
        keys: dict[str, DkimKey] = self.__pydantic_private__["_dkim_by_domain"]  # type: ignore[index]
        return keys.get(from_domain.lower().removesuffix("."))

    def api_user(self, name: str) -> ApiUser | None:
        return next((u for u in self.api_users if u.name == name), None)


# --- the file ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiUserMatch:
    server_name: str
    server: Server
    user: ApiUser


class Policy(PolicyModel):
    """The whole postline.yaml."""

    version: Version
    retention_days: int = Field(default=40, ge=1)
    source_ip_pools: dict[Name, tuple[IPAddress, ...]] = Field(default_factory=dict)
    servers: dict[Name, Server]
    inbound: tuple[Inbound, ...] = ()
    console: Console = Console()

    _users: dict[str, tuple[str, ApiUser]] = PrivateAttr(default_factory=dict)

    def __call__(self) -> Policy:
        """A policy is a fixed source of itself: what takes the live policy (a
        ``PolicySource``, see ``reload.py``) also takes a policy that never changes."""
        return self

    @model_validator(mode="after")
    def _check(self) -> Policy:
        issues: list[tuple[Loc, str]] = []
        for check in POLICY_CHECKS:
            check(self, issues)
        raise_issues(issues)
        self._users = {
            user.name: (name, user)
            for name, server in self.servers.items()
            for user in server.api_users
        }
        for path, ref in _secret_refs(self, ()):
            ref.key = dotted(path)
        return self

    @property
    def api_user_count(self) -> int:
        return len(self._users)

    def server(self, name: str) -> Server:
        """The server called ``name``; KeyError names the known ones."""
        try:
            return self.servers[name]
        except KeyError:
            raise KeyError(
                f"unknown server {name!r} (servers: {', '.join(self.servers)})"
            ) from None

    def find_api_user(self, name: str) -> tuple[str, ApiUser] | None:
        """``(server name, user)`` for a username (SMTP AUTH, API), or None."""
        return self._users.get(name)

    def authenticate(
        self, name: str, secret: str, ip: str | IPAddressValue | None = None
    ) -> ApiUserMatch | None:
        """The user if the name exists, the secret verifies and (when given) ``ip`` is in its
        ``allowed_ips``; else None. Slow by design (argon2): run it off the event loop."""
        found = self._users.get(name)
        if found is None:
            return None
        server_name, user = found
        if ip is not None and not user.ip_allowed(ip):
            return None
        if not user.verify(secret):
            return None
        return ApiUserMatch(server_name, self.servers[server_name], user)

    def inbound_for(self, domain: str) -> Inbound | None:
        """The inbound webhook for a recipient domain, or None (the mail is refused)."""
        domain = domain.lower().removesuffix(".")
        return next((entry for entry in self.inbound if entry.domain == domain), None)

    def unauthenticated_server(self, ip: str | IPAddressValue) -> str | None:
        """The server whose ``relay_without_auth_from`` covers ``ip`` (at most one: overlaps
        are refused at load)."""
        return next(
            (n for n, s in self.servers.items() if s.relay.relays_without_auth_for(ip)), None
        )

    def source_addresses(self, server_name: str) -> tuple[IPAddressValue, ...]:
        """The server's source IP pool; empty when it has none (the OS picks)."""
        pool = self.server(server_name).source_ip_pool
        return self.source_ip_pools[pool] if pool is not None else ()


def _secret_refs(value: Any, path: Loc) -> Iterator[tuple[Loc, SecretRef]]:
    if isinstance(value, SecretRef):
        yield path, value
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            yield from _secret_refs(getattr(value, field), (*path, field))
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            yield from _secret_refs(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_refs(item, (*path, key))
