"""SMTP reply classification: every rule's own sample, and the design's typical sources."""

from __future__ import annotations

import pytest

from postline.bounce.classify import classify_reply, reply_rules


def _parts(sample: str) -> tuple[int, str, str]:
    code, _, rest = sample.partition(" ")
    enhanced = rest.split(" ", 1)[0] if rest[:1] in "245" and rest[1:2] == "." else ""
    return int(code), enhanced, rest


@pytest.mark.parametrize("rule", reply_rules().text, ids=lambda r: r.sample[:40])
def test_each_text_rule_classifies_its_sample(rule) -> None:  # type: ignore[no-untyped-def]
    assert classify_reply(*_parts(rule.sample)).status == rule.status


@pytest.mark.parametrize(
    ("reply", "status", "permanent"),
    [
        ("550 5.1.1 <x@b.test>: Recipient address rejected", 2, True),
        ("550 5.1.2 Host unknown", 1, True),
        ("553 5.1.3 Bad recipient address syntax", 9, True),
        ("552 5.2.2 Mailbox over limit", 5, True),
        ("552 5.3.4 Message too big for system", 8, True),
        ("554 5.7.1 Message rejected as spam", 4, True),
        ("550 5.4.4 Unable to route", 1, True),
        ("554 5.3.0 Mail system configuration error", 7, True),
        ("452 4.2.2 Mailbox full", 5, False),
        ("550 Requested action not taken", 99, True),
    ],
)
def test_typical_replies(reply: str, status: int, permanent: bool) -> None:
    verdict = classify_reply(*_parts(reply))
    assert (verdict.status, verdict.permanent) == (status, permanent)


def test_provider_text_overrides_the_enhanced_code() -> None:
    # A 5.7.1 is normally a policy rejection (4), but this text says the user does not exist.
    assert classify_reply(550, "5.7.1", "5.7.1 <u@x>: User unknown in virtual table").status == 2
