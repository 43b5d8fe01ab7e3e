"""Checks across the whole policy file: what no single section can see by itself.

Each check adds an issue at the key it is about (``servers.b.api_users[0].name``), and the
policy runs them all, so one load reports every problem of the file at once. A section's own
rules (duplicate users within a server, a second ``*`` speed rule) are its model's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from postline.common.policy.base import Loc, find_duplicates
from postline.common.policy.fields import IPNetworkValue

if TYPE_CHECKING:
    from postline.common.policy.model import Policy

Issues = list[tuple[Loc, str]]


def has_servers(policy: Policy, issues: Issues) -> None:
    if not policy.servers:
        issues.append((("servers",), "needs at least one server"))


def pools_are_sets_of_addresses(policy: Policy, issues: Issues) -> None:
    for pool, addresses in policy.source_ip_pools.items():
        if not addresses:
            issues.append((("source_ip_pools", pool), "a pool needs at least one address"))
        find_duplicates(
            issues, ((("source_ip_pools", pool, i), a) for i, a in enumerate(addresses))
        )


def servers_name_known_pools(policy: Policy, issues: Issues) -> None:
    for name, server in policy.servers.items():
        pool = server.source_ip_pool
        if pool is not None and pool not in policy.source_ip_pools:
            known = ", ".join(policy.source_ip_pools) or "none defined"
            issues.append(
                (
                    ("servers", name, "source_ip_pool"),
                    f"unknown source IP pool {pool!r} (source_ip_pools: {known})",
                )
            )


def source_ips_fit_the_pool(policy: Policy, issues: Issues) -> None:
    """A speed rule cannot spread a destination over more addresses than the pool has.
    Inherited values come from an explicit "*" rule or the built-in 1, so checking the values
    written in the file is enough."""
    for name, server in policy.servers.items():
        pool = policy.source_ip_pools.get(server.source_ip_pool) if server.source_ip_pool else None
        pool_size = len(pool) if pool is not None else None
        for i, rule in enumerate(server.speed):
            if rule.source_ips is not None and rule.source_ips > (pool_size or 1):
                issues.append(
                    (
                        ("servers", name, "speed", i, "source_ips"),
                        f"source_ips is {rule.source_ips} but the server's source IP pool "
                        f"has {pool_size or 'no'} address(es)",
                    )
                )


def api_user_names_are_unique(policy: Policy, issues: Issues) -> None:
    """A username identifies its server (SMTP AUTH, the APIs): unique across servers. Duplicates
    within one server are the server's own check."""
    first: dict[str, tuple[str, int]] = {}
    for name, server in policy.servers.items():
        for i, user in enumerate(server.api_users):
            if user.name in first and first[user.name][0] != name:
                other, j = first[user.name]
                issues.append(
                    (
                        ("servers", name, "api_users", i, "name"),
                        f"api user {user.name!r} is also defined at servers.{other}"
                        f".api_users[{j}]: a username identifies its server, so names "
                        "are unique across servers",
                    )
                )
            first.setdefault(user.name, (name, i))


def unauthenticated_networks_are_disjoint(policy: Policy, issues: Issues) -> None:
    """A client relaying without AUTH must belong to one server."""
    seen: list[tuple[str, IPNetworkValue]] = []
    for name, server in policy.servers.items():
        for net in server.relay.relay_without_auth_from:
            for other, other_net in seen:
                if other != name and net.version == other_net.version and net.overlaps(other_net):
                    issues.append(
                        (
                            ("servers", name, "relay", "relay_without_auth_from"),
                            f"{net} overlaps {other_net} of servers.{other}: an "
                            "unauthenticated client must belong to one server",
                        )
                    )
        seen.extend((name, net) for net in server.relay.relay_without_auth_from)


def inbound_domains_are_unique(policy: Policy, issues: Issues) -> None:
    find_duplicates(
        issues,
        ((("inbound", i, "domain"), entry.domain) for i, entry in enumerate(policy.inbound)),
        "one URL per inbound domain",
    )


POLICY_CHECKS: tuple[Callable[[Policy, Issues], None], ...] = (
    has_servers,
    pools_are_sets_of_addresses,
    servers_name_known_pools,
    source_ips_fit_the_pool,
    api_user_names_are_unique,
    unauthenticated_networks_are_disjoint,
    inbound_domains_are_unique,
)
