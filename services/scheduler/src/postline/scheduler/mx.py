"""MX hosts of recipient domains, for speed rules written with ``mx:`` (a provider's many
domains share one limit because they share its MX hosts).

Looked up only when a server has such rules and the domain has no route. Answers are kept for
their TTL (``postline.common.resolver``, the sender's cache too); a failure means "no MX
hosts" for a while (``FAILED_TTL``): the domain's own rules then apply and the sender reports
the DNS problem on the attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dns.exception

from postline.common.resolver import AnswerCache, answer_ttl, make_resolver

logger = logging.getLogger(__name__)

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
        self._resolver = make_resolver(nameservers or [], timeout)
        self._answers: AnswerCache[tuple[str, ...]] = AnswerCache(clock, MAX_ENTRIES)

    async def hosts(self, domain: str) -> tuple[str, ...]:
        """The domain's MX host names, lowest preference first; empty when unknown."""
        return await self._answers.get(domain, lambda: self._lookup(domain))

    async def _lookup(self, domain: str) -> tuple[tuple[str, ...], float]:
        try:
            answer = await self._resolver.resolve(domain, "MX")
        except (dns.exception.DNSException, OSError) as exc:
            logger.debug("%s: no MX hosts for speed rules (%s)", domain, exc)
            return (), FAILED_TTL
        records = sorted(answer, key=lambda r: r.preference)
        hosts = tuple(str(r.exchange).rstrip(".").lower() for r in records)
        return hosts, answer_ttl(answer) if hosts else FAILED_TTL
