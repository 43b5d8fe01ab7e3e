"""MX hosts of recipient domains, for speed rules written with ``mx:`` (a provider's many
domains share one limit because they share its MX hosts).

Looked up only when a server has such rules and the domain has no route; answers are cached
(a failed lookup for less long), and a failure means "no MX hosts": the domain's own rules
then apply and the sender reports the DNS problem on the attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import dns.asyncresolver
import dns.exception

logger = logging.getLogger(__name__)

FOUND_TTL = 3600.0
FAILED_TTL = 300.0
LOOKUP_TIMEOUT = 5.0
MAX_ENTRIES = 100_000


class MxCache:
    def __init__(
        self,
        clock: Callable[[], float],
        nameservers: list[tuple[str, int]] | None = None,
        timeout: float = LOOKUP_TIMEOUT,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self._resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            self._resolver.nameservers = [ip for ip, _ in nameservers]
            self._resolver.nameserver_ports = dict(nameservers)
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._pending: dict[str, asyncio.Future[tuple[str, ...]]] = {}

    async def hosts(self, domain: str) -> tuple[str, ...]:
        cached = self._cache.get(domain)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        pending = self._pending.get(domain)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[tuple[str, ...]] = asyncio.get_running_loop().create_future()
        self._pending[domain] = future
        try:
            hosts = await self._lookup(domain)
            ttl = FOUND_TTL if hosts else FAILED_TTL
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[domain] = (self.clock() + ttl, hosts)
            future.set_result(hosts)
            return hosts
        finally:
            if not future.done():
                future.set_result(())
            del self._pending[domain]

    async def _lookup(self, domain: str) -> tuple[str, ...]:
        try:
            answer = await self._resolver.resolve(domain, "MX", lifetime=self.timeout)
        except (dns.exception.DNSException, OSError) as exc:
            logger.debug("%s: no MX hosts for speed rules (%s)", domain, exc)
            return ()
        records = sorted(answer, key=lambda r: r.preference)
        return tuple(str(r.exchange).rstrip(".").lower() for r in records)
