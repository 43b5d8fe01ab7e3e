"""Delivery speed: the ``speed`` rules of a server and how a destination's limits resolve.

Rules are searched in file order and the first that matches wins, except the ``*`` rule: it
holds the defaults, wherever it stands in the list (the example file puts it first), and
applies only when no other rule matches. A limit a rule leaves out comes from the ``*`` rule,
then from :data:`BUILTIN_SPEED`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import Field, model_validator

from postline.common.policy.base import Loc, PolicyModel, raise_issues
from postline.common.policy.fields import DomainPatternField, Duration, Name, RateValue
from postline.common.policy.units import Rate

# Destinations whose limits a table remembers (then it starts over).
MEMO_SIZE = 4096

_LIMITS = ("connections", "interval", "rate", "messages_per_connection", "source_ips")

# What an omitted limit means when the "*" rule does not set it either.
BUILTIN_SPEED: dict[str, Any] = {
    "connections": 20,
    "interval": timedelta(0),
    "rate": None,
    "messages_per_connection": 100,
    "source_ips": 1,
}


class SpeedRule(PolicyModel):
    """One entry of ``speed``: ``match`` (recipient domain patterns) or ``mx`` (MX host
    patterns), an optional ``group`` (every domain of the rule shares one limit), and limits.
    ``rate: null`` written explicitly means no rate limit; other null limits are omitted."""

    match: tuple[DomainPatternField, ...] | None = None
    mx: tuple[DomainPatternField, ...] | None = None
    group: Name | None = None
    connections: int | None = Field(default=None, ge=1)
    interval: Duration | None = None
    rate: RateValue | None = None
    messages_per_connection: int | None = Field(default=None, ge=1)
    source_ips: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> SpeedRule:
        issues: list[tuple[Loc, str]] = []
        if (self.match is None) == (self.mx is None):
            issues.append(((), "a speed rule needs exactly one of match or mx"))
        for key, patterns in (("match", self.match), ("mx", self.mx)):
            if patterns is None:
                continue
            if not patterns:
                issues.append(((key,), "needs at least one pattern"))
            stars = [i for i, p in enumerate(patterns) if p.pattern == "*"]
            if stars and key == "mx":
                issues.append(((key, stars[0]), 'for the default rule write match: ["*"]'))
            elif stars and len(patterns) > 1:
                issues.append(((key, stars[0]), '"*" must be the only pattern of its rule'))
        if self.is_default and self.group is not None:
            issues.append(
                (("group",), 'the "*" rule holds per-domain defaults; it cannot have a group')
            )
        raise_issues(issues)
        return self

    @property
    def is_default(self) -> bool:
        return self.match is not None and tuple(p.pattern for p in self.match) == ("*",)

    def applies_to(self, domain: str, mx_hosts: Iterable[str] = ()) -> bool:
        if self.match is not None:
            return any(p.matches(domain) for p in self.match)
        assert self.mx is not None
        return any(p.matches(host) for host in mx_hosts for p in self.mx)

    def written_limits(self) -> dict[str, Any]:
        """The limits this rule sets itself."""
        return {
            field: getattr(self, field)
            for field in _LIMITS
            if field in self.model_fields_set
            and (field == "rate" or getattr(self, field) is not None)
        }


@dataclass(frozen=True, slots=True)
class SpeedLimit:
    """The resolved limits for one destination. ``key`` names what the limit is counted per:
    ``group:<name>`` for a grouped rule (every domain of the rule shares it), otherwise
    ``domain:<recipient domain>``. ``rule`` is the index in ``speed`` (None: the ``*`` rule
    or, without one, the built-in defaults)."""

    key: str
    group: str | None
    connections: int
    interval: timedelta
    rate: Rate | None
    messages_per_connection: int
    source_ips: int
    rule: int | None


@dataclass(frozen=True, slots=True)
class SpeedTable:
    """A server's rules with their limits resolved once, at load."""

    default: SpeedLimit
    rules: tuple[tuple[SpeedRule, SpeedLimit], ...]
    uses_mx: bool
    # (domain, MX hosts) -> limit: the scheduler and the sender ask for every delivery, most
    # of them for the same few destinations; the table (and this) is rebuilt at each load.
    answers: dict[tuple[str, tuple[str, ...]], SpeedLimit] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(cls, rules: tuple[SpeedRule, ...]) -> SpeedTable:
        default_rule = next((r for r in rules if r.is_default), None)
        base = {**BUILTIN_SPEED, **(default_rule.written_limits() if default_rule else {})}
        return cls(
            default=SpeedLimit(key="", group=None, rule=None, **base),
            rules=tuple(
                (
                    rule,
                    SpeedLimit(
                        key="", group=rule.group, rule=i, **{**base, **rule.written_limits()}
                    ),
                )
                for i, rule in enumerate(rules)
                if not rule.is_default
            ),
            uses_mx=any(rule.mx is not None for rule in rules),
        )

    def limit_for(self, domain: str, mx_hosts: Iterable[str] = ()) -> SpeedLimit:
        mx_hosts = tuple(mx_hosts)
        found = self.answers.get((domain, mx_hosts))
        if found is None:
            found = self._limit_for(domain, mx_hosts)
            if len(self.answers) >= MEMO_SIZE:
                self.answers.clear()
            self.answers[(domain, mx_hosts)] = found
        return found

    def _limit_for(self, domain: str, mx_hosts: tuple[str, ...]) -> SpeedLimit:
        domain = domain.lower().removesuffix(".")
        limit = next(
            (lim for rule, lim in self.rules if rule.applies_to(domain, mx_hosts)), self.default
        )
        key = f"group:{limit.group}" if limit.group else f"domain:{domain}"
        return dataclasses.replace(limit, key=key)
