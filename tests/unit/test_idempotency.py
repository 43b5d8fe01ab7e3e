"""The in-memory idempotency store: claim, replay, reuse, waiting, expiry."""

from __future__ import annotations

import asyncio

import pytest

from postline.ingress.idempotency import (
    Claim,
    IdempotencyKeyReused,
    MemoryIdempotencyStore,
    Replay,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_first_claims_then_replays() -> None:
    store = MemoryIdempotencyStore()
    claim = await store.claim("dev", "k", "f1")
    assert isinstance(claim, Claim)
    await store.complete(claim, b"answer")
    assert await store.claim("dev", "k", "f1") == Replay(b"answer")


async def test_another_fingerprint_is_reuse_and_scopes_are_apart() -> None:
    store = MemoryIdempotencyStore()
    claim = await store.claim("dev", "k", "f1")
    assert isinstance(claim, Claim)
    with pytest.raises(IdempotencyKeyReused):
        await store.claim("dev", "k", "f2")  # also while in progress
    assert isinstance(await store.claim("other", "k", "f2"), Claim)


async def test_a_waiter_gets_the_answer_of_the_first() -> None:
    store = MemoryIdempotencyStore()
    claim = await store.claim("dev", "k", "f")
    assert isinstance(claim, Claim)
    waiter = asyncio.create_task(store.claim("dev", "k", "f"))
    await asyncio.sleep(0)
    assert not waiter.done()
    await store.complete(claim, b"done")
    assert await waiter == Replay(b"done")


async def test_a_waiter_takes_over_after_a_failure() -> None:
    store = MemoryIdempotencyStore()
    claim = await store.claim("dev", "k", "f")
    assert isinstance(claim, Claim)
    waiter = asyncio.create_task(store.claim("dev", "k", "f"))
    await asyncio.sleep(0)
    await store.release(claim)
    assert isinstance(await waiter, Claim)


async def test_answers_expire_after_the_ttl() -> None:
    clock = Clock()
    store = MemoryIdempotencyStore(ttl=24 * 3600, clock=clock)
    claim = await store.claim("dev", "k", "f")
    assert isinstance(claim, Claim)
    await store.complete(claim, b"a")
    clock.now += 24 * 3600 - 1
    assert await store.claim("dev", "k", "f") == Replay(b"a")
    clock.now += 2
    assert isinstance(await store.claim("dev", "k", "other"), Claim)


async def test_oldest_answers_go_beyond_max_keys() -> None:
    store = MemoryIdempotencyStore(max_keys=3)
    for i in range(5):
        claim = await store.claim("dev", f"k{i}", "f")
        assert isinstance(claim, Claim)
        await store.complete(claim, str(i).encode())
    assert len(store) <= 4
    assert isinstance(await store.claim("dev", "k0", "f"), Claim)  # forgotten
    assert await store.claim("dev", "k4", "f") == Replay(b"4")


async def test_a_stale_claim_cannot_touch_a_newer_one() -> None:
    store = MemoryIdempotencyStore()
    old = await store.claim("dev", "k", "f")
    assert isinstance(old, Claim)
    await store.release(old)
    new = await store.claim("dev", "k", "f")
    assert isinstance(new, Claim)
    await store.complete(old, b"stale")  # ignored
    await store.complete(new, b"fresh")
    assert await store.claim("dev", "k", "f") == Replay(b"fresh")
