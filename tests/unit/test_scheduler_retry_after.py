"""Replies that ask for a later retry: every rule's real sample, and replies that do not."""

from __future__ import annotations

import pytest

from postline.scheduler.retry_after import MAX_SECONDS, retry_after, rules


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r.name)
def test_each_rule_reads_its_sample(rule) -> None:  # type: ignore[no-untyped-def]
    assert retry_after(rule.sample) == rule.seconds


@pytest.mark.parametrize(
    ("reply", "seconds"),
    [
        ("451 4.7.1 Please try again in 10 min", 600),
        ("421 4.7.0 Try again after 2 hours", 7200),
        ("450 4.2.1 Mailbox busy, retry in 90s", 90),
        ("451 Greylisted for 5 minutes, see https://example.test/greylist", 300),
        ("421 try again in 999999 hours", MAX_SECONDS),
    ],
)
def test_waits_in_replies(reply: str, seconds: float) -> None:
    assert retry_after(reply) == seconds


@pytest.mark.parametrize(
    "reply",
    [
        "451 4.7.1 Greylisted, try again later",
        "421 4.4.2 try again later",
        "452 4.2.2 Mailbox full",
        "451 4.3.0 Temporary lookup failure after 3 attempts",
        "421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints - 4.16.55.1",
    ],
)
def test_replies_without_a_wait(reply: str) -> None:
    assert retry_after(reply) is None
