"""What Mailman 3 sends to a post's sender (issue #16, round 51), as Mailman 3.3.10 wrote it on
loopback (``bench/bounce_accuracy/mtas/mailman3.py``; trimmed, domains and dates changed), and
the round's case file. Each test names the behaviour it holds; the first two fail without
round 51's rules (a non-member's post refused read 99, a post refused by the content filter
read as no bounce at all).
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import mailman3
from bench.bounce_accuracy.mtas.cases import MAILMAN3_CASES, load
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set

HEADERS = """\
Return-Path: <{name}-bounces@lists.example.org>
Subject: {subject}
From: {sender}
To: news@example.net
MIME-Version: 1.0
Message-ID: <1796580558@lists.example.org>
Date: Sun, 06 Dec 2026 18:09:18 +0000
Precedence: bulk
X-Mailman-Version: 3.3.10
List-Id: <{name}.lists.example.org>
List-Owner: <mailto:{name}-owner@lists.example.org>
"""

ORIGINAL = """\
From: Newsletter <news@example.net>
To: {name}@lists.example.org
Subject: Newsletter 1
Message-ID: <1@example.net>
Content-Type: text/plain; charset=us-ascii

Hello,
"""

# A refusal of a post: the list's text (or the bare reason), the post attached.
REFUSAL = (
    HEADERS
    + """\
Content-Type: multipart/mixed; boundary="==b=="

--==b==
Content-Type: text/plain; charset="us-ascii"

{text}
--==b==
Content-Type: message/rfc822
MIME-Version: 1.0

"""
    + ORIGINAL
    + "\n--==b==--\n"
)

# A notice of one text part (a hold, a request, a notice about a membership).
NOTICE = HEADERS + 'Content-Type: text/plain; charset="us-ascii"\n\n{text}\n'

REJECTED = """\
Your message to the Members mailing-list was rejected for the following
reasons:

{reason}

The original message as received by Mailman is attached.
"""

HELD = """\
Your mail to 'members@lists.example.org' with the subject

    Newsletter 1

Is being held until the list moderator can review it for approval.

The message is being held because:

    {reason}

Either the message will get posted to the list, or you will receive
notification of the moderator's decision.
"""


def _mail(template: str, name: str, subject: str, text: str, sender: str = "") -> bytes:
    sender = sender or f"{name}-owner@lists.example.org"
    raw = template.format(name=name, subject=subject, sender=sender, text=text)
    return raw.replace("\n", "\r\n").encode()


def _verdicts(raw: bytes) -> list[tuple[str | None, int, str]]:
    _, found = classify_mail(raw)
    return [(f.recipient, f.status, f.delivery) for f in found]


@pytest.mark.parametrize(
    "reason",
    ["The message is not from a list member", "The message comes from a moderated member"],
)
def test_a_post_the_list_refuses_by_who_may_post_is_a_refusal_of_policy(reason: str) -> None:
    # read 99 before round 51 (the rejection recognised, its reason not)
    text = REJECTED.format(reason=reason)
    raw = _mail(REFUSAL, "members", "Newsletter 1", text)
    assert _verdicts(raw) == [("members@lists.example.org", 4, "failed")]


@pytest.mark.parametrize(
    "reason",
    [
        "The message's content type was not explicitly allowed",
        "The message's content type was explicitly disallowed",
        "The message's file extension was explicitly disallowed",
        "After content filtering, the message was empty",
    ],
)
def test_a_post_the_content_filter_refuses_is_a_bounce_of_policy(reason: str) -> None:
    # Mailman sends the bare reason under the post's own subject: read as no bounce at all
    # before round 51
    raw = _mail(REFUSAL.replace("{name}@lists", "photos@lists"), "photos", "Newsletter 2", reason)
    assert _verdicts(raw) == [("photos@lists.example.org", 4, "failed")]


def test_the_reasons_read_alone_as_a_reply() -> None:
    found = classify_failure(550, "", "550 The message is not from a list member")
    assert found.status == 4
    found = classify_failure(554, "", "554 The message's content type was explicitly disallowed")
    assert found.status == 4


def test_a_post_over_the_lists_size_refused_stays_oversize() -> None:
    text = REJECTED.format(reason="The message is larger than the 40 KB maximum size")
    raw = _mail(REFUSAL, "members", "Newsletter 1", text)
    assert _verdicts(raw) == [("members@lists.example.org", 8, "failed")]


@pytest.mark.parametrize(
    "reason",
    [
        "The message is not from a list member",
        "The message is larger than the 2 KB maximum size",
        "Emergency moderation is in effect for this list",
        "The message comes from a moderated member",
    ],
)
def test_a_post_held_for_the_moderators_is_no_bounce(reason: str) -> None:
    subject = "Your message to members@lists.example.org awaits moderator approval"
    raw = _mail(NOTICE, "members", subject, HELD.format(reason=reason))
    assert _verdicts(raw) == []


@pytest.mark.parametrize(
    ("subject", "text"),
    [
        (  # the list's bounce processing disabled the member (sent to the member itself)
            "Your subscription for Members mailing list has been disabled",
            "Your subscription has been disabled on the members@lists.example.org mailing\n"
            "list because it has received a number of bounces indicating that there may\n"
            "be a problem delivering messages to news@example.net.  You may want to\n"
            "check with your mail administrator for more help.",
        ),
        ("You have been unsubscribed from the Members mailing list", ""),
        (
            "Your confirmation is needed to join the members@lists.example.org mailing list.",
            "We have received a registration request for the email address\n\n"
            "    news@example.net\n\nBefore you can start using GNU Mailman at this site, "
            "you must first confirm\nthat this is your email address.",
        ),
        ('Welcome to the "Members" mailing list', 'Welcome to the "Members" mailing list!'),
        (  # the owner's copy when the filter forwards rather than refuses
            "Content filter message notification",
            "The attached message matched the Members mailing list's content\nfiltering "
            "rules and was prevented from being forwarded on to the list\nmembership.",
        ),
        (  # a post the list sent on, parts removed by its filter
            "[Members] Newsletter 3",
            "Hello,\n\n___________________________________________\nMailman's content "
            "filtering has removed the\nfollowing MIME parts from this message.\n\n"
            "Content-Type: application/zip\nName: issue.zip",
        ),
    ],
)
def test_a_lists_notices_about_a_membership_and_its_posts_are_no_bounce(
    subject: str, text: str
) -> None:
    sender = "members-bounces@lists.example.org"
    raw = _mail(NOTICE, "members", subject, text, sender=sender)
    assert _verdicts(raw) == []


def test_the_mailman3_cases_are_a_committed_set_run_from_a_pinned_version() -> None:
    assert_committed_set(
        MAILMAN3_CASES, ("mailman3",), cases=(14,), rows=(14,), senders=14, split="dev"
    )
    assert f"Mailman {mailman3.VERSION}" in MAILMAN3_CASES.read_text("utf-8")
    cases = load("mailman3", MAILMAN3_CASES)
    refused = {c.name: c.failed for c in cases if any(v.status for v in c.failed.values())}
    assert set(refused) == {
        "post-not-member",
        "post-content-refused",
        "post-no-such-list",
        "post-moderated-member-rejected",
    }
    for labels in refused.values():
        assert all(v.status in {2, 4} and v.delivery == "failed" for v in labels.values())
        assert all(address is not None for address in labels)
    for case in cases:
        if case.name not in refused:
            assert list(case.failed) == [None]  # names no address of Postline's
            assert all(v.status is None and v.delivery is None for v in case.failed.values())
