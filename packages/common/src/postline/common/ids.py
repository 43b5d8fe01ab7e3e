"""Identifiers: time-ordered, so ids sort roughly by creation and index well in ClickHouse."""

from __future__ import annotations

import hashlib
import os
import re
import time

_ID_PREFIX = re.compile(r"[0-9a-f]{12}")


def new_id() -> str:
    """32 hex chars: 48 bits of milliseconds, then 80 random bits (UUIDv7-like layout)."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


def id_time(value: str) -> float | None:
    """When an id of ``new_id`` was made (seconds since the epoch); None for another string."""
    if len(value) != 32 or _ID_PREFIX.fullmatch(value[:12]) is None:
        return None
    return int(value[:12], 16) / 1000


def stable_id(anchor: str, *parts: object) -> str:
    """The same 32 hex chars each time for the same ``anchor`` (an id of ours) and ``parts``.

    What a redelivered input makes again — the event of a result handled twice after a crash —
    gets the same id, so reports count it once. The first 12 chars are the anchor's, keeping
    the time-ordered layout of ``new_id`` (for an anchor that is no id of ours, all 32 are the
    digest's)."""
    text = "\x1f".join(map(str, (anchor, *parts)))
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return anchor[:12] + digest[:20] if _ID_PREFIX.fullmatch(anchor[:12]) else digest
