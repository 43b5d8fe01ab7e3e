"""Notices of Twisted's mail server and of fetchmail (issue #16, round 34), in the forms the
two write them: Twisted's ``twisted.mail.bounce`` names the failed address in its heading's
own sentence and no reason ("the following address has permanent errors: <address>. I've
given up ..."), with its report fields in the delivery-status part's header block; fetchmail
writes an RFC 3464 report with a heading of its own and the listener's reply.

The texts are those the two programs wrote on loopback in round 34 (addresses and dates
changed); each test names the behaviour it holds.
"""

from __future__ import annotations

import pytest

from postline.bounce.classify import reply_rules
from postline.bounce.mail import Kind
from postline.bounce.verdicts import classify_mail


def _twisted(address: str, sender: str = "news@example.test") -> bytes:
    domain = address.partition("@")[2]
    return (
        "Return-Path: <>\r\n"
        f"From: postmaster@{domain}\r\n"
        f"To: {sender}\r\n"
        "Subject: Returned Mail: see transcript for details\r\n"
        "Message-ID: <20261206122158.22706.782742917.bounce.0@localhost>\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        '    boundary="1796559718.18_22706_XXXXX"\r\n'
        "\r\n"
        "--1796559718.18_22706_XXXXX\r\n"
        "\r\n"
        f"I'm sorry, the following address has permanent errors: {address}.\r\n"
        "I've given up, and I will not retry the message again.\r\n"
        "\r\n"
        "\r\n"
        "--1796559718.18_22706_XXXXX\r\n"
        "Content-Type: message/delivery-status\r\n"
        "Arrival-Date: Sun Dec  6 12:21:58 2026\r\n"
        f"Final-Recipient: RFC822; {address}\r\n"
        "Received: from app.example.test ([127.0.0.1] helo=app.example.test\r\n"
        "\tby localhost with esmtp ([Twisted, version 20.3.0])\r\n"
        f"\tfor <{address}> Sun, 06 Dec 2026 12:21:57 +0000\r\n"
        f"From: Newsletter <{sender}>\r\n"
        f"To: {address}\r\n"
        "Subject: Newsletter 2\r\n"
        "Message-ID: <179655971736.22704.848519418861464996@example.test>\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "Hello,\r\n\r\nthis is issue 2 of our newsletter.\r\n"
    ).encode()


def _fetchmail(address: str, reason: str, reply: str, status: str) -> bytes:
    boundary = "foo-mani-padme-hum-24716-24680-1796559859"
    return (
        "Return-Path: <>\r\n"
        "Subject: Mail delivery failed: returning message to sender\r\n"
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        "To: news@example.test\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        f'\tboundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error.\r\n\r\n"
        f"Reason: {reason}\r\n\r\n"
        "The following address(es) failed:\r\n"
        f"{address}\r\n   SMTP error: {reply}\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\n"
        "Last-Attempt-Date: Sun, 06 Dec 2026 12:24:19 +0000 (UTC)\r\n"
        f"Action: failed\r\nStatus: {status}\r\nDiagnostic-Code: {reply}\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: Newsletter <news@example.test>\r\n"
        f"To: {address}\r\nSubject: Newsletter 7\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def test_twisteds_notice_names_its_failed_address_in_the_headings_sentence() -> None:
    # Its report fields are in the part's header block, so the part's body has none: the
    # address is the one the heading names, "has permanent errors: <address>."
    report, verdicts = classify_mail(_twisted("aino.sarva@example.org"))
    assert report.kind is Kind.BOUNCE
    assert [v.recipient for v in verdicts] == ["aino.sarva@example.org"]


def test_twisteds_notice_gives_no_reason_and_is_no_expiry() -> None:
    # Twisted writes the same words whatever the remote server answered (a 550 5.1.1, a
    # 452 4.2.2 it does not retry): "I've given up" after "permanent errors" is no message
    # that stayed in the queue too long (3) but a permanent failure without a reason (99).
    _, verdicts = classify_mail(_twisted("gun.aberg@example.org"))
    assert [(v.status, v.delivery) for v in verdicts] == [(99, "failed")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # qmail-send's heading for permanent errors and Twisted's, in the first person
        ("This is a permanent error; I've given up. Sorry it didn't work out.", "on-hold"),
        ("The following address has permanent errors: a@example.org. I have given up.", "on-hold"),
        # counter-examples: the words of an MTA that gave up retrying stay an expiry
        ("Could not deliver for the last 432000 seconds. Giving up.", "expired"),
        ("Message expired: retries exhausted, giving up.", "expired"),
        ("I'm not going to try again; this message has been in the queue too long.", "expired"),
    ],
)
def test_given_up_in_the_first_person_is_no_expiry(text: str, reason: str) -> None:
    assert reply_rules().reason_for(0, "", text, action="failed") == reason


def test_the_headings_sentence_is_read_only_with_an_address_after_it() -> None:
    # "the following addresses had permanent fatal errors" alone (Sendmail's heading, the
    # addresses on the lines below it) names nobody in that sentence.
    body = (
        "----- The following addresses had permanent fatal errors -----\r\n"
        "<mira.sand@example.org>\r\n"
        "    (reason: 550 5.1.1 <mira.sand@example.org>... User unknown)\r\n"
    )
    mail = (
        "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>\r\n"
        "To: news@example.test\r\nSubject: Returned mail: see transcript for details\r\n"
        f"Content-Type: text/plain\r\n\r\n{body}"
    ).encode()
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.status) for v in verdicts] == [("mira.sand@example.org", 2)]


@pytest.mark.parametrize(
    ("reason", "reply", "status", "expected"),
    [
        (
            "Some addresses were rejected by the MDA fetchmail forwards to.",
            "550 5.1.1 <oskar.rud@example.net>: Recipient address rejected: User unknown in"
            " local recipient table",
            "5.1.1",
            2,
        ),
        # fetchmail's own heading for any 552 after DATA says "too large": the reply says
        # the mailbox is full
        ("This message was too large (SMTP error 552).", "552 5.2.2 Quota exceeded", "5.2.2", 5),
        (
            "This message was too large (SMTP error 552).",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            "5.3.4",
            8,
        ),
        ("General SMTP/ESMTP error.", "554 5.7.1 Spam message rejected", "5.7.1", 4),
        # no enhanced code in the reply: fetchmail writes Status 5.0.0
        (
            "Some addresses were rejected by the MDA fetchmail forwards to.",
            "552 Requested mail action aborted: exceeded storage allocation",
            "5.0.0",
            5,
        ),
    ],
)
def test_fetchmails_notice_is_read_by_the_listeners_reply(
    reason: str, reply: str, status: str, expected: int
) -> None:
    address = "oskar.rud@example.net"
    _, verdicts = classify_mail(_fetchmail(address, reason, reply, status))
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        (address, expected, "failed")
    ]
