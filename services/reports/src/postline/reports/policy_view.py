"""The running policy as the console's Settings page and ``GET /api/v1/settings`` show it:
each server's settings as plain values, read-only, never a secret or a hash.

Values are written as in the policy file (durations ``10m``, rates ``600/min``, patterns as
typed). Anything holding a secret is left out by its type (``{argon2}`` hashes, ``{env}`` and
``{file}`` references), whatever key it sits under, so a key added to the policy later cannot
leak one; webhook URLs lose their query string and credentials (they may carry tokens).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from datetime import time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from postline.common.policy import Policy
from postline.common.policy.secrets import Argon2Hash, SecretRef
from postline.common.policy.units import format_duration

# The sections of a server shown, in the page's order.
SECTIONS = (
    "speed",
    "priority",
    "prohibited_hours",
    "retry",
    "routes",
    "forwarding",
    "dkim",
    "require_tls",
    "blocking",
    "relay",
    "notices",
    "webhooks",
    "weekly_summary",
)
_SECRET = object()


def _plain(value: Any) -> Any:
    """A policy value as JSON (``_SECRET`` for anything secret: the caller drops it)."""
    if isinstance(value, Argon2Hash | SecretRef):
        return _SECRET
    if isinstance(value, BaseModel):
        fields = {}
        for name in type(value).model_fields:
            plain = _plain(getattr(value, name))
            if plain is not _SECRET and plain is not None:
                fields[name] = plain
        return fields
    if isinstance(value, bool | int | float | str) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, tzinfo):
        return str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, dict):
        return {str(k): p for k, v in value.items() if (p := _plain(v)) is not _SECRET}
    if isinstance(value, tuple | list | frozenset | set):
        items = [p for v in value if (p := _plain(v)) is not _SECRET]
        return sorted(items) if isinstance(value, frozenset | set) else items
    if value is None:
        return None
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    return str(value)


def _url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def policy_view(policy: Policy, servers: Iterable[str]) -> dict[str, Any]:
    answer = []
    for name in servers:
        server = policy.servers[name]
        plain = _plain(server)
        for hook in plain.get("webhooks", []):
            hook["url"] = _url(hook["url"])
        answer.append(
            {
                "name": name,
                "return_path_domain": plain["return_path_domain"],
                "csv_download": plain["csv_download"],
                "strip_received_headers": plain["strip_received_headers"],
                "source_ip_pool": plain.get("source_ip_pool"),
                "source_ips": [str(a) for a in policy.source_addresses(name)],
                "api_users": [
                    {"name": u.name, "allowed_ips": [str(n) for n in u.allowed_ips]}
                    for u in server.api_users
                ],
                **{section: plain.get(section) for section in SECTIONS},
            }
        )
    return {"retention_days": policy.retention_days, "servers": answer}
