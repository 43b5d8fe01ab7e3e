"""masqmail's notices (issue #16, round 47), as masqmail 1.0.0, built from a snapshot of its
public repository, wrote them on loopback (``bench/bounce_accuracy/mtas/masqmail.py``;
trimmed, domains and dates changed), and the round's case file. Each test names the behaviour
it holds; the first fails without round 47's rule (require-ptr read masqmail's failed lookup of
the recipient's host as a PTR refusal, 4).
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import masqmail
from bench.bounce_accuracy.mtas.cases import MASQMAIL_CASES
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set

NOTICE = """\
Return-Path: <>
Received: by mx.example.net (MasqMail 1.0.0, from userid 8)
\tid 1xaEef-2UH-00
\tfor <news@example.org>; Sun, 06 Dec 2026 16:05:32 +0000
Subject: {subject}
From: MAILER-DAEMON@mx.example.net
To: news@example.org
MIME-Version: 1.0
Content-Type: multipart/mixed;
        boundary="1xaEdZ-2Ia-00/mx.example.net"
Date: Sun, 06 Dec 2026 16:05:32 +0000
Message-ID: <1xaEef-2UH-00@mx.example.net>

This is a MIME-encapsulated message.

--1xaEdZ-2Ia-00/mx.example.net
Content-Description: Notification
Content-Type: text/plain

This message was sent to you by the mailer daemon (MasqMail 1.0.0)
at mx.example.net.

{heading}

\t<{recipient}>

{hint}

{reason}

If you need help, write to <postmaster@mx.example.net>.

{attached}

--1xaEdZ-2Ia-00/mx.example.net
Content-Description: Undelivered Message
Content-Type: message/rfc822

From: Newsletter <news@example.org>
To: {recipient}
Subject: Newsletter 13
Message-ID: <1@example.org>

Hello,

--1xaEdZ-2Ia-00/mx.example.net--
"""
FAILED = {
    "subject": "Mail Delivery Failure Notice",
    "heading": "Sorry, but your mail could not be delivered to all recipients.\n"
    "Delivery to the following recipients failed permanently and has been given\nup:",
    "hint": "This error message may give you a hint about what caused the\nfailure:",
    "attached": "Your message follows attached, including all headers:",
}


def _notice(recipient: str, reason: str) -> bytes:
    text = NOTICE.format(recipient=recipient, reason=reason, **FAILED)
    return text.replace("\n", "\r\n").encode()


def _verdict(raw: bytes) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw)
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def test_masqmails_failed_lookup_of_the_recipients_host_is_an_unknown_host() -> None:
    # NODATA for the recipient's domain (hstrerror's "No address associated with name"), until
    # masqmail gave up: read 4 (require-ptr's "not resolve ... address") before round 47
    raw = _notice(
        "malte.beck@nodata.example",
        "Could not resolve host nodata.example:\n\tNo address associated with name",
    )
    assert _verdict(raw) == ("malte.beck@nodata.example", 1, "failed")


def test_masqmails_nxdomain_and_remote_refusals_read_as_their_cause() -> None:
    raw = _notice("lea.mohr@nx.example", "Could not resolve host nx.example:\n\tUnknown host")
    assert _verdict(raw) == ("lea.mohr@nx.example", 1, "failed")
    reply = "550 5.1.1 <alma.brandt@example.net>: Recipient address rejected: User unknown"
    raw = _notice(
        "alma.brandt@example.net",
        f"Unexpected response while connected to\n192.0.2.25:\n\t{reply}",
    )
    assert _verdict(raw) == ("alma.brandt@example.net", 2, "failed")


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.46]",
        "550 5.7.1 Could not resolve your IP address 192.0.2.46 to a hostname",
        "550 5.7.25 Could not resolve host mail.example.org: the sending address has no PTR",
    ],
)
def test_a_refusal_of_the_clients_own_reverse_lookup_stays_4(reply: str) -> None:
    found = classify_failure(int(reply[:3]), reply.split()[1], reply, action="failed")
    assert found.status == 4


def test_the_masqmail_cases_are_a_committed_set_built_from_the_recorded_commit() -> None:
    assert_committed_set(
        MASQMAIL_CASES,
        ("masqmail",),
        cases=(16,),
        rows=(23,),
        senders=16,
        split="dev",
        statuses={1, 2, 3, 4, 5, 7, 8},
    )
    assert masqmail.COMMIT in MASQMAIL_CASES.read_text("utf-8")  # the source's commit recorded
