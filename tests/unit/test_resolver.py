"""The DNS pieces the scheduler and the sender share (``postline.common.resolver``)."""

from __future__ import annotations

import asyncio

import pytest

from postline.common.resolver import AnswerCache, parse_nameservers
from postline.scheduler.settings import SchedulerSettings
from postline.sender.settings import SenderSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lookups:
    """A lookup that answers ``value`` for ``ttl`` seconds and counts how often it was asked."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return f"answer {self.calls}", self.ttl


def test_nameservers_are_read_alike_by_both_services() -> None:
    value = "127.0.0.1:5353, ::1, [::1], [2001:db8::1]:5300,10.0.0.53,,"
    expected = [
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("::1", 53),
        ("2001:db8::1", 5300),
        ("10.0.0.53", 53),
    ]
    assert parse_nameservers(value) == expected
    assert parse_nameservers("") == []
    env = {"amqp_url": "amqp://x", "policy": "p.yaml", "dns_servers": value}
    assert SchedulerSettings(**env).dns_nameservers() == expected  # type: ignore[arg-type]
    assert SenderSettings(**env).dns_nameservers() == expected  # type: ignore[arg-type]


async def test_an_answer_is_kept_for_its_own_ttl() -> None:
    clock = Clock()
    cache: AnswerCache[str] = AnswerCache(clock)
    short, long = Lookups(ttl=10), Lookups(ttl=3600)
    assert await cache.get("short.test", short) == "answer 1"
    assert await cache.get("long.test", long) == "answer 1"
    clock.now += 9
    assert await cache.get("short.test", short) == "answer 1"
    assert cache.fresh("short.test")
    clock.now += 2  # past the short answer's TTL, well inside the long one's
    assert not cache.fresh("short.test")
    assert await cache.get("short.test", short) == "answer 2"
    assert await cache.get("long.test", long) == "answer 1"
    assert (short.calls, long.calls) == (2, 1)


async def test_concurrent_lookups_of_one_name_share_one_query() -> None:
    cache: AnswerCache[str] = AnswerCache(Clock())
    lookup = Lookups()
    lookup.release.clear()
    waiting = [asyncio.ensure_future(cache.get("busy.test", lookup)) for _ in range(5)]
    await asyncio.sleep(0)
    lookup.release.set()
    assert await asyncio.gather(*waiting) == ["answer 1"] * 5
    assert lookup.calls == 1


async def test_a_failed_lookup_is_not_cached() -> None:
    cache: AnswerCache[str] = AnswerCache(Clock())
    lookup = Lookups()
    lookup.fail = TimeoutError("no answer")
    with pytest.raises(TimeoutError):
        await cache.get("flaky.test", lookup)
    assert not cache.fresh("flaky.test")
    lookup.fail = None
    assert await cache.get("flaky.test", lookup) == "answer 2"


async def test_a_full_cache_drops_expired_answers_first_then_the_oldest() -> None:
    clock = Clock()
    cache: AnswerCache[str] = AnswerCache(clock, max_entries=3)
    await cache.get("old.test", Lookups(ttl=5))
    await cache.get("a.test", Lookups(ttl=100))
    await cache.get("b.test", Lookups(ttl=100))
    clock.now += 10
    await cache.get("c.test", Lookups(ttl=100))  # the expired one goes
    assert [cache.fresh(n) for n in ("a.test", "b.test", "c.test")] == [True, True, True]
    await cache.get("d.test", Lookups(ttl=100))  # nothing expired: the oldest goes
    assert [cache.fresh(n) for n in ("a.test", "b.test", "c.test", "d.test")] == [
        False,
        True,
        True,
        True,
    ]
