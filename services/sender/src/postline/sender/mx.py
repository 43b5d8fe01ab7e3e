"""Where to deliver a domain's mail: its MX hosts in preference order (RFC 5321 §5.1)."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.resolver


class NoMailHost(Exception):
    """The domain cannot receive mail: NXDOMAIN, or a null MX (RFC 7505)."""


async def mail_hosts(domain: str) -> list[str]:
    try:
        answer = await dns.asyncresolver.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN as exc:
        raise NoMailHost(f"{domain}: no such domain") from exc
    except dns.resolver.NoAnswer:
        return [domain]  # implicit MX: the domain's own address records
    records = sorted(answer, key=lambda r: r.preference)
    hosts = [str(r.exchange).rstrip(".") for r in records]
    if hosts == [""]:
        raise NoMailHost(f"{domain}: null MX, the domain accepts no mail")
    return hosts
