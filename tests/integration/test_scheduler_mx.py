"""The scheduler's MX lookups (speed rules written with ``mx:``) against a real DNS server on
127.0.0.1: kept for the records' TTL, like the sender's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from postline.scheduler.mx import FAILED_TTL, MxCache
from tests.sender_support import DnsServer, Zone


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    server = await DnsServer(Zone(ttl=120)).start()
    try:
        yield server
    finally:
        server.close()


async def test_mx_hosts_are_kept_for_the_answers_ttl(dns_server: DnsServer) -> None:
    dns_server.zone.add("provider.test", "MX", "20 mx2.provider.test.", "10 MX1.provider.test.")
    clock = Clock()
    mx = MxCache(clock, [("127.0.0.1", dns_server.port)], timeout=5)
    assert await mx.hosts("provider.test") == ("mx1.provider.test", "mx2.provider.test")
    clock.now += 119
    assert await mx.hosts("provider.test") == ("mx1.provider.test", "mx2.provider.test")
    assert dns_server.queries[("provider.test", "MX")] == 1
    clock.now += 2  # the record's 120 s are over: asked again (an hour before, whatever the TTL)
    dns_server.zone.records[("provider.test", "MX")] = ["10 mx.other.test."]
    assert await mx.hosts("provider.test") == ("mx.other.test",)
    assert dns_server.queries[("provider.test", "MX")] == 2


async def test_a_domain_without_mx_hosts_is_asked_again_later(dns_server: DnsServer) -> None:
    clock = Clock()
    mx = MxCache(clock, [("127.0.0.1", dns_server.port)], timeout=5)
    assert await mx.hosts("nowhere.test") == ()
    assert await mx.hosts("nowhere.test") == ()
    assert dns_server.queries[("nowhere.test", "MX")] == 1
    clock.now += FAILED_TTL + 1
    dns_server.zone.add("nowhere.test", "MX", "10 mx.nowhere.test.")
    assert await mx.hosts("nowhere.test") == ("mx.nowhere.test",)
