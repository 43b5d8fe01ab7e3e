"""Sympa's answers (issue #16, round 52), as Sympa 6.2.70 (Debian 12's package, run on
loopback: ``bench/bounce_accuracy/mtas/sympa.py``) wrote them (trimmed, domains and dates
changed), and the round's case file. Each test names the behaviour it holds; the first fails
without round 52's rule (a list's refusal of a post, reported as a DSN with RFC 3463's own
X.7.1 text, was read as the security error of an authentication requirement, 7).
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import sympa
from bench.bounce_accuracy.mtas.cases import SYMPA_CASES, load
from postline.bounce.mail import Kind
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set

DSN = """\
Return-Path: <>
Message-Id: <sympa.1796581019.93342.12234.665@lists.example.net>
Date: Sun, 6 Dec 2026 18:16:59 +0000
To: news@example.org
From: "SYMPA" <sympa-request@lists.example.net>
MIME-Version: 1.0
Auto-Submitted: auto-replied
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="----------=_<b1@lists.example.net>"
Subject: {subject}
X-Loop: sympa@lists.example.net
X-Mailer: Sympa 6.2.70

This is a MIME-encapsulated message.

------------=_<b1@lists.example.net>
Content-Description: Notification
Content-Type: TEXT/PLAIN; charset="US-ASCII"

{text}

------------=_<b1@lists.example.net>
Content-Type: message/delivery-status

Reporting-MTA: dns; lists.example.net
Arrival-Date: Sun, 6 Dec 2026 18:16:58 +0000

Final-Recipient: rfc822; {list}
Action: failed
Status: {status}
Remote-MTA: dns; lists.example.net
Diagnostic-Code: {diagnostic}

------------=_<b1@lists.example.net>
Content-Type: message/rfc822

From: Newsletter <news@example.org>
To: {list}
Subject: Newsletter 1
Message-ID: <1@example.org>

Hello,

------------=_<b1@lists.example.net>--
"""
INTRO = (
    "This is an automatic response sent by Sympa Mailing Lists Manager.\n"
    "Impossible to distribute your message for list '{list}' for the\nfollowing reason:\n\n"
)
REFUSED = (
    "Your message for list 'members' (attached below) was rejected.\n"
    "You are not allowed to send this message for the following reason:\n\n {why}\n"
    "For further information, please contact members-request@lists.example.net"
)
NOT_AUTHORIZED = "X-Sympa; Delivery not authorized, message refused"
ANSWER = """\
Return-Path: <{return_path}>
Message-Id: <sympa.1796581024.670337.12234.467@lists.example.net>
Date: Sun, 6 Dec 2026 18:17:04 +0000
To: news@example.org
From: "SYMPA" <sympa@lists.example.net>
MIME-Version: 1.0
Content-Type: text/plain; charset="US-ASCII"
Auto-Submitted: {auto}
Subject: {subject}
X-Mailer: Sympa 6.2.70

{text}
"""


def _dsn(text: str, status: str, diagnostic: str, address: str = "members@lists.example.net",
         subject: str = "Message distribution: Authorization denied") -> bytes:  # fmt: skip
    raw = DSN.format(subject=subject, text=INTRO.format(list=address) + text, list=address,
                     status=status, diagnostic=diagnostic)  # fmt: skip
    return raw.replace("\n", "\r\n").encode()


def _verdict(raw: bytes) -> tuple[str, int | None, str | None]:
    report, found = classify_mail(raw)
    assert report.kind is Kind.BOUNCE
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


@pytest.mark.parametrize(
    "why",
    [
        "Message distribution in the list is restricted to list subscribers.",  # send private
        "Message distribution in this list is not allowed.",  # send closed
    ],
)
def test_a_lists_refusal_of_a_post_in_a_dsn_is_a_refusal_of_the_sender(why: str) -> None:
    # read 7 before round 52 (security-error's "delivery not authorized": an authentication
    # requirement); the notice's own words say the poster may not send to the list
    raw = _dsn(REFUSED.format(why=why), "5.7.1", NOT_AUTHORIZED)
    assert _verdict(raw) == ("members@lists.example.net", 4, "failed")


def test_the_rfcs_not_authorized_text_alone_keeps_its_reading() -> None:
    # counter-example: the same DSN without words about the sender is still a security error
    raw = _dsn("Your message could not be delivered.", "5.7.1", NOT_AUTHORIZED)
    assert _verdict(raw) == ("members@lists.example.net", 7, "failed")


def test_words_about_the_sender_do_not_override_another_diagnostic() -> None:
    # counter-example: the rule is about the RFC's generic X.7.1 text only
    raw = _dsn(
        REFUSED.format(why="The list is restricted."),
        "5.1.1",
        "smtp; 550 5.1.1 <members@lists.example.net>: Recipient address rejected: User unknown",
    )
    assert _verdict(raw) == ("members@lists.example.net", 2, "failed")


def test_sympas_size_refusal_and_a_message_without_commands_read_as_their_cause() -> None:
    size = (
        "Your message could not be sent because its size (6 kB) was over the maximum\n"
        "size (2 kB) allowed on this list."
    )
    raw = _dsn(size, "5.2.3", "X-Sympa; Message length exceeds administrative limit",
               "digest@lists.example.net", "Too large message")  # fmt: skip
    assert _verdict(raw) == ("digest@lists.example.net", 8, "failed")
    raw = _dsn("No command found in message.", "5.6.1", "X-Sympa; Media not supported",
               "sympa@lists.example.net", "Results of your commands")  # fmt: skip
    assert _verdict(raw) == ("sympa@lists.example.net", 4, "failed")


@pytest.mark.parametrize(
    ("return_path", "auto", "subject", "text"),
    [
        # a post held for the moderators
        ("board-owner@lists.example.net", "auto-replied", "Message distribution",
         "Your message to the list 'board' has been forwarded to the moderator(s)"),
        # a command refused by the robot, which took the message
        ("sympa-request@lists.example.net", "auto-generated", "Results of your commands",
         "\nCommand has been rejected:\n\n> review members\n"
         "  The 'review' feature is restricted to list owners.\n"),
        ("sympa-request@lists.example.net", "auto-generated", "Results of your commands",
         "\nCommand has failed:\n\n> unsubscribe events\n"
         "  E-mail address news@example.org was not found in list events.\n"),
        # bounce management's warning to a member whose address bounced (its words name
        # non-delivery reports: the list's, about mail it sent the member)
        ("weekly-owner@lists.example.net", "auto-generated",
         "Your bouncing address in list weekly",
         "Messages from list weekly that were sent to your address\n"
         "news@example.org have generated non-delivery reports since 06 Dec\n2026.\n"
         "If this problem persists, you will be automatically unsubscribed from the\nlist.\n\n"
         "You can contact list owner: weekly-request@lists.example.net"),
        # a subscription's confirmation request
        ("sympa-request@lists.example.net", "auto-replied", "AUTH 460fdcb071479886 SUB board",
         "You requested that your e-mail address be added to list 'board'.\n"
         "If you want this action to be taken, please\n\n- reply to this mail"),
    ],
)  # fmt: skip
def test_sympas_answers_that_are_no_failure_are_no_bounce(
    return_path: str, auto: str, subject: str, text: str
) -> None:
    raw = ANSWER.format(return_path=return_path, auto=auto, subject=subject, text=text)
    report, _ = classify_mail(raw.replace("\n", "\r\n").encode())
    assert report.kind is not Kind.BOUNCE


def test_the_sympa_cases_are_a_committed_set() -> None:
    assert_committed_set(SYMPA_CASES, ("sympa",), cases=(12,), rows=(12,), senders=12, split="dev")
    cases = load("sympa", SYMPA_CASES)
    bounces = {a: label.status for c in cases for a, label in c.failed.items() if label.status}
    assert bounces == {
        "members@birch.test": 4,
        "events@birch.test": 4,
        "digest@birch.test": 8,
        "sympa@birch.test": 4,
    }
    assert set(sympa.COMMANDS) <= {case.name for case in cases}
    assert {case.recipients[0].split("@")[0] for case in cases} <= {*sympa.LISTS, "sympa"}
