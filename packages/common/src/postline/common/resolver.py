"""DNS for the services that look up mail hosts: the resolver settings, the resolver, and one
cache of answers that honours their TTLs.

The scheduler asks for MX hosts (speed rules written with ``mx:``), the sender for where mail
goes; both read ``POSTLINE_DNS_SERVERS`` / ``POSTLINE_DNS_TIMEOUT`` the same way, so one
environment gives them the same resolvers.

An answer is kept as long as DNS says it may be (the smallest TTL of the records used), so a
busy domain costs one lookup per TTL, and a record that changes is seen when it expires.
Concurrent lookups of one name share one query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import dns.asyncresolver
import dns.nameserver
import dns.resolver

V = TypeVar("V")

DNS_PORT = 53
PER_QUERY_TIMEOUT = 2.0  # one server's answer; retried (other servers) within the lifetime


def parse_nameservers(value: str) -> list[tuple[str, int]]:
    """``POSTLINE_DNS_SERVERS`` as (ip, port) pairs: comma-separated ``ip[:port]``, an IPv6
    address bare or as ``[v6]:port``. Empty: none (the system's resolvers)."""
    servers = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        if item.count(":") > 1 and not item.startswith("["):
            servers.append((item, DNS_PORT))  # a bare IPv6 address; with a port write [v6]:port
            continue
        host, sep, port = item.rpartition(":")
        if sep and host and port.isdigit():
            servers.append((host.strip("[]"), int(port)))
        else:
            servers.append((item.strip("[]"), DNS_PORT))
    return servers


def make_resolver(nameservers: list[tuple[str, int]], timeout: float) -> dns.asyncresolver.Resolver:
    """The system's resolver, or one asking only ``nameservers`` (ip, port); a lookup takes at
    most ``timeout`` seconds."""
    resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in nameservers]
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, PER_QUERY_TIMEOUT)
    return resolver


def answer_ttl(answer: dns.resolver.Answer) -> float:
    """Seconds the answer may be kept: ``expiration`` accounts for every record of a CNAME
    chain (the smallest TTL wins)."""
    return max(0.0, answer.expiration - time.time())


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    expires: float
    value: V


class AnswerCache(Generic[V]):
    """Answers by name, each kept until its own expiry; one lookup in flight per name.

    ``lookup`` returns the answer and how many seconds it may be kept; an exception is not
    cached (every caller waiting on that lookup gets it, and the next call asks again).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000):
        self._clock = clock
        self.max_entries = max_entries
        self._cache: dict[str, _Entry[V]] = {}
        self._pending: dict[str, asyncio.Task[V]] = {}

    def fresh(self, name: str) -> bool:
        entry = self._cache.get(name)
        return entry is not None and entry.expires > self._clock()

    async def get(self, name: str, lookup: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        entry = self._cache.get(name)
        if entry is not None and entry.expires > self._clock():
            return entry.value
        task = self._pending.get(name)
        if task is None:
            task = asyncio.ensure_future(self._look_up(name, lookup))
            self._pending[name] = task
            task.add_done_callback(lambda _: self._pending.pop(name, None))
        # One caller giving up (cancelled) does not cancel the lookup the others wait on.
        return await asyncio.shield(task)

    async def _look_up(self, name: str, lookup: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        value, ttl = await lookup()
        self._store(name, _Entry(self._clock() + ttl, value))
        return value

    def _store(self, name: str, entry: _Entry[V]) -> None:
        if len(self._cache) >= self.max_entries:
            now = self._clock()
            for key in [k for k, e in self._cache.items() if e.expires <= now]:
                del self._cache[key]
            while len(self._cache) >= self.max_entries:
                del self._cache[next(iter(self._cache))]  # the oldest stored
        self._cache[name] = entry
