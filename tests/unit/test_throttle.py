"""Failed authentications slow a key down: free tries, then an exponential lock."""

from __future__ import annotations

import logging

import pytest

from postline.common.throttle import AuthThrottle, account_key, ip_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock) -> AuthThrottle:
    return AuthThrottle(
        free_failures=3, base_delay=2.0, max_delay=60.0, forget_after=300.0, clock=clock
    )


def test_free_failures_then_doubling_lock() -> None:
    clock = Clock()
    t = throttle(clock)
    key = account_key("Dev")
    assert [t.failed(key) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert t.failed(key) == 2.0
    assert t.retry_after(key) == 2.0
    clock.now += 2.0
    assert t.retry_after(key) == 0.0
    assert t.failed(key) == 4.0
    clock.now += 4.0
    assert t.failed(key) == 8.0


def test_lock_is_capped() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(40):
        wait = t.failed("ip:192.0.2.1")
        clock.now += wait
    assert wait == 60.0


def test_any_locked_key_blocks() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(4):
        t.failed(ip_key("192.0.2.1"))
    assert t.retry_after(account_key("someone"), ip_key("192.0.2.1")) == 2.0
    assert t.retry_after(account_key("someone"), ip_key("192.0.2.2")) == 0.0


def test_success_clears_the_account_not_the_ip() -> None:
    clock = Clock()
    t = throttle(clock)
    account, ip = account_key("dev"), ip_key("192.0.2.1")
    for _ in range(4):
        t.failed(account, ip)
    clock.now += 2.0
    t.succeeded(account)
    assert t.failed(account) == 0.0
    assert t.failed(ip) == 4.0


def test_quiet_keys_are_forgotten() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(3):
        t.failed("k")
    clock.now += 300.0
    assert t.failed("k") == 0.0


def test_memory_is_bounded() -> None:
    clock = Clock()
    t = AuthThrottle(max_keys=10, clock=clock)
    for i in range(100):
        t.failed(ip_key(f"192.0.2.{i}"))
    assert len(t._keys) == 10


def test_each_lock_is_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    t = throttle(clock)
    with caplog.at_level(logging.WARNING, logger="postline.common.throttle"):
        for _ in range(4):
            t.failed(account_key("dev"))
    assert caplog.messages == ["account:dev throttled for 2s after 4 failed authentications"]
