"""``Idempotency-Key``: a retried send answers what the first one did instead of sending twice.

A key belongs to one API user (``scope``) for `DEFAULT_TTL_SECONDS` after its request
succeeded. The request is identified by a ``fingerprint`` (a digest of the operation and the
request as parsed), so a key reused for a different request is an error, not a silent replay.
A second request with a key still in progress waits for the first: it then replays the first's
answer, or, if the first failed (validation, broker down), runs itself. Only successful answers
are stored; failures change nothing, so retrying them is safe.

`MemoryIdempotencyStore` keeps keys in the process: right for one ingress replica, and for
several only if a client's retries reach the same replica. Several replicas behind a load
balancer need a shared `IdempotencyStore` (e.g. Redis ``SET key NX PX`` for the claim plus the
stored answer, or a database row with a unique key); answers are bytes for that reason.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

DEFAULT_TTL_SECONDS = 24 * 3600.0
DEFAULT_MAX_KEYS = 100_000


class IdempotencyKeyReused(Exception):
    """The key was already used by this user for a different request."""


@dataclass(frozen=True)
class Claim:
    """The caller owns the key: it must `complete` or `release` it."""

    scope: str
    key: str
    token: object


@dataclass(frozen=True)
class Replay:
    """The key's first request succeeded; this is its answer."""

    answer: bytes


class IdempotencyStore(Protocol):
    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim | Replay:
        """Own the key, or get the stored answer; wait while another request owns it.

        Raises `IdempotencyKeyReused` if the key is known with another fingerprint.
        """
        ...

    async def complete(self, claim: Claim, answer: bytes) -> None:
        """Store the answer of a successful request."""
        ...

    async def release(self, claim: Claim) -> None:
        """Give the key up after a failure: the next request with it runs afresh."""
        ...


@dataclass(eq=False)
class _Entry:
    fingerprint: str
    answer: bytes | None = None
    expires: float = float("inf")  # while in progress
    done: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryIdempotencyStore:
    """In-process `IdempotencyStore` (one replica); oldest answers go first beyond ``max_keys``."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self.clock = clock
        # Ordered by completion (in-progress entries sit where they were claimed).
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim | Replay:
        while True:
            self._forget_old()
            entry = self._entries.get((scope, key))
            if entry is not None and entry.expires <= self.clock():
                del self._entries[(scope, key)]
                entry = None
            if entry is None:
                entry = _Entry(fingerprint)
                self._entries[(scope, key)] = entry
                return Claim(scope, key, entry)
            if entry.fingerprint != fingerprint:
                raise IdempotencyKeyReused(key)
            if entry.answer is not None:
                return Replay(entry.answer)
            await entry.done.wait()

    async def complete(self, claim: Claim, answer: bytes) -> None:
        entry = self._owned(claim)
        if entry is None:
            return
        entry.answer = answer
        entry.expires = self.clock() + self.ttl
        self._entries.move_to_end((claim.scope, claim.key))
        entry.done.set()

    async def release(self, claim: Claim) -> None:
        entry = self._owned(claim)
        if entry is not None:
            del self._entries[(claim.scope, claim.key)]
        if isinstance(claim.token, _Entry):
            claim.token.done.set()

    def _owned(self, claim: Claim) -> _Entry | None:
        entry = self._entries.get((claim.scope, claim.key))
        return entry if entry is claim.token else None

    def _forget_old(self) -> None:
        now = self.clock()
        while self._entries:
            k, oldest = next(iter(self._entries.items()))
            if oldest.answer is None:
                break  # in progress: its owner will complete or release it
            if oldest.expires > now and len(self._entries) <= self.max_keys:
                break
            del self._entries[k]
