"""Waiting in tests: a condition met as the deadline passes is a success, not a timeout."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.polling import apoll_until, poll_until

TIMEOUT = 0.05


def test_a_zero_timeout_still_checks_once() -> None:
    assert poll_until(lambda: "here", "the value", timeout=0) == "here"


async def test_a_zero_timeout_still_checks_once_async() -> None:
    assert await apoll_until(lambda: "here", "the value", timeout=0) == "here"


def test_a_condition_met_only_after_the_deadline_is_checked_once_more() -> None:
    checks = 0

    def check() -> bool:
        nonlocal checks
        checks += 1
        if checks == 1:
            time.sleep(2 * TIMEOUT)  # the first check outlasts the whole timeout
            return False
        return True

    assert poll_until(check, "the second check", timeout=TIMEOUT, every=0.001)
    assert checks == 2


async def test_a_condition_met_only_after_the_deadline_is_checked_once_more_async() -> None:
    checks = 0

    async def check() -> bool:
        nonlocal checks
        checks += 1
        if checks == 1:
            await asyncio.sleep(2 * TIMEOUT)
            return False
        return True

    assert await apoll_until(check, "the second check", timeout=TIMEOUT, every=0.001)
    assert checks == 2


def test_a_condition_never_met_fails_naming_it_and_its_last_value() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the answer \(last: 0\)"):
        poll_until(lambda: 0, "the answer", timeout=TIMEOUT, every=0.01)


async def test_a_condition_never_met_fails_naming_it_and_its_last_value_async() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the answer \(last: ''\)"):
        await apoll_until(lambda: "", "the answer", timeout=TIMEOUT, every=0.01)
