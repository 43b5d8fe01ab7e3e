"""Where a domain's mail goes: its MX hosts in preference order, with their addresses.

RFC 5321 §5.1: the MX records, lowest preference first (hosts of equal preference in random
order); a domain with no MX record is its own mail host (the "implicit MX", its A/AAAA
records); a domain whose only MX is ``0 .`` accepts no mail (null MX, RFC 7505).

Answers are cached for their TTL (the smallest of the records used), so a busy domain costs
one lookup per TTL, not one per message; concurrent lookups of one domain share one query.
A domain that does not exist is cached briefly (``negative_ttl``); temporary failures are not
cached, so the next attempt asks again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from postline.common.resolver import AnswerCache, answer_ttl
from postline.sender import replies
from postline.sender.replies import Reply

logger = logging.getLogger(__name__)

DEFAULT_NEGATIVE_TTL = 60.0
MAX_CACHED_DOMAINS = 10_000


@dataclass(frozen=True, slots=True)
class MailHost:
    name: str
    preference: int
    addresses: tuple[str, ...]  # IPv4 first, then IPv6


class LookupFailed(Exception):
    """No mail host for the domain; ``reply`` is the local reply that ends the attempt
    (permanent for NXDOMAIN, null MX or hosts without addresses, temporary for DNS errors)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True, slots=True)
class _Found:
    """A lookup's answer as cached: the hosts, or the permanent failure that ends attempts."""

    hosts: tuple[MailHost, ...] | None
    failure: LookupFailed | None


class MxResolver:
    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        *,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver
        self.negative_ttl = negative_ttl
        self._answers: AnswerCache[_Found] = AnswerCache(clock, MAX_CACHED_DOMAINS)

    async def mail_hosts(self, domain: str) -> list[MailHost]:
        """The domain's mail hosts in the order to try them; raises :class:`LookupFailed`."""
        domain = domain.lower().removesuffix(".")
        found = await self._answers.get(domain, lambda: self._lookup(domain))
        if found.failure is not None:
            raise found.failure
        assert found.hosts is not None
        return _shuffle_equal_preferences(found.hosts)

    def cached(self, domain: str) -> bool:
        return self._answers.fresh(domain.lower().removesuffix("."))

    async def _lookup(self, domain: str) -> tuple[_Found, float]:
        try:
            hosts, ttl = await self._resolve(domain)
        except LookupFailed as failure:
            if not failure.reply.permanent:
                raise  # temporary: not cached
            return _Found(None, failure), self.negative_ttl
        return _Found(hosts, None), ttl

    async def _resolve(self, domain: str) -> tuple[tuple[MailHost, ...], float]:
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise LookupFailed(
                Reply.make(replies.NO_SUCH_DOMAIN, replies.DNS, domain=domain)
            ) from None
        except dns.resolver.NoAnswer:
            return await self._implicit_mx(domain)
        except dns.exception.DNSException as exc:
            raise self._temporary(domain, exc) from None
        ttl = answer_ttl(answer)
        records = sorted(answer, key=lambda r: r.preference)
        real = [
            (r.preference, r.exchange.to_text(omit_final_dot=True).lower())
            for r in records
            if r.exchange != dns.name.root
        ]
        if not real:
            # RFC 7505 §3: "0 ." alone says the domain accepts no mail.
            raise LookupFailed(Reply.make(replies.NULL_MX, replies.DNS, domain=domain))
        found = await asyncio.gather(*(self._addresses(name) for _, name in real))
        hosts = []
        failure: Exception | None = None
        for (pref, name), (addresses, host_ttl, host_failure) in zip(real, found, strict=True):
            failure = failure or host_failure
            if addresses:
                hosts.append(MailHost(name, pref, addresses))
                ttl = min(ttl, host_ttl)
        if not hosts:
            raise self._no_address(domain, [name for _, name in real], failure)
        return tuple(hosts), ttl

    async def _implicit_mx(self, domain: str) -> tuple[tuple[MailHost, ...], float]:
        """RFC 5321 §5.1: without an MX record the domain itself is the mail host."""
        addresses, ttl, failure = await self._addresses(domain)
        if not addresses:
            raise self._no_address(domain, [domain], failure)
        return (MailHost(domain, 0, addresses),), min(ttl, self.negative_ttl)

    async def _addresses(self, host: str) -> tuple[tuple[str, ...], float, Exception | None]:
        """(addresses, ttl, a temporary failure if any) for a host name."""
        try:
            return (str(ipaddress.ip_address(host)),), float("inf"), None
        except ValueError:
            pass
        results = await asyncio.gather(
            self._records(host, "A"), self._records(host, "AAAA"), return_exceptions=True
        )
        addresses: list[str] = []
        ttl = float("inf")
        failure: Exception | None = None
        for result in results:
            if isinstance(result, BaseException):
                failure = failure or (result if isinstance(result, Exception) else None)
                continue
            records, record_ttl = result
            addresses.extend(records)
            if records:
                ttl = min(ttl, record_ttl)
        return tuple(addresses), ttl, failure

    async def _records(self, host: str, rdtype: str) -> tuple[list[str], float]:
        try:
            answer = await self.resolver.resolve(host, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return [], float("inf")
        return [r.address for r in answer], answer_ttl(answer)

    def _no_address(self, domain: str, hosts: list[str], failure: Exception | None) -> LookupFailed:
        if failure is not None:
            return self._temporary(domain, failure)
        return LookupFailed(
            Reply.make(
                replies.NO_MAIL_HOST_ADDRESS, replies.DNS, domain=domain, hosts=", ".join(hosts)
            )
        )

    def _temporary(self, domain: str, exc: Exception) -> LookupFailed:
        logger.info("%s DNS lookup failed: %s", domain, exc)
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return LookupFailed(Reply.make(replies.DNS_FAILED, replies.DNS, domain=domain, error=error))


def _shuffle_equal_preferences(hosts: tuple[MailHost, ...]) -> list[MailHost]:
    """RFC 5321 §5.1: hosts of equal preference are tried in random order (spreads load)."""
    ordered: list[MailHost] = []
    i = 0
    while i < len(hosts):
        j = i
        while j < len(hosts) and hosts[j].preference == hosts[i].preference:
            j += 1
        group = list(hosts[i:j])
        random.shuffle(group)
        ordered.extend(group)
        i = j
    return ordered
