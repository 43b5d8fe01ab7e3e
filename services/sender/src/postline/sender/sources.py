"""Which source IP a delivery leaves from, when the scheduler did not choose one.

A destination (speed key) is sent from ``source_ips`` addresses of the server's pool: a window
of the pool starting at a place fixed by the key. Each destination so always sees the same few
addresses (receivers judge reputation per sending IP), and destinations spread over the pool.
Within the window the delivery takes an address that has an idle session to reuse, else the one
with the fewest sessions open to that destination.
"""

from __future__ import annotations

import functools
import ipaddress
import zlib
from collections.abc import Callable, Sequence


def window(pool: Sequence[str], count: int, key: str) -> list[str]:
    """The ``count`` addresses of ``pool`` that ``key`` is sent from (stable per key)."""
    if not pool:
        return []
    count = max(1, min(count, len(pool)))
    start = zlib.crc32(key.encode()) % len(pool)
    return [pool[(start + i) % len(pool)] for i in range(count)]


def choose(
    candidates: Sequence[str],
    *,
    has_idle: Callable[[str], bool],
    open_sessions: Callable[[str], int],
) -> str:
    """One of ``candidates`` ("" when there are none: the OS chooses)."""
    if not candidates:
        return ""
    for ip in candidates:
        if has_idle(ip):
            return ip
    return min(candidates, key=open_sessions)  # ties: the window's first


def same_family(source_ip: str, address: str) -> bool:
    """Whether a socket bound to ``source_ip`` can reach ``address`` (IPv4 vs IPv6)."""
    if not source_ip:
        return True
    source, target = _version(source_ip), _version(address)
    return source is None or target is None or source == target


@functools.lru_cache(maxsize=4096)
def _version(ip: str) -> int | None:
    """4 or 6 (None: not an IP address); a sender sees the same few addresses again and again."""
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return None
