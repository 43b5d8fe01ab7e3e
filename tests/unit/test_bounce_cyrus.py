"""Cyrus IMAP's own mail and the notices of what its lmtpd answers (issue #16, round 50), as
Cyrus 3.6.1 (Debian's cyrus-imapd 3.6.1-4+deb12u5) and Postfix wrote them on loopback
(``bench/bounce_accuracy/mtas/cyrus.py``; trimmed, domains and dates changed), and the round's
case file. The first two tests fail without round 50's rule: Cyrus's Sieve rejection notice names
its mailbox's user at ``internal`` (``mbname_recipient``, ``defaultdomain`` unset), not the
address the mail was sent to.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import cyrus
from bench.bounce_accuracy.mtas.cases import CYRUS_CASES
from postline.bounce.mail.model import Kind
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import DELAYED_DAYS_KIND, FAILED_KIND, postfix_notice

# Cyrus's own rejection notice (RFC 5429 reject with sieve_use_lmtp_reject: no), relayed by
# the MTA it submitted it to; {final} is its Final-Recipient, {to} the returned message's To.
REJECTION = """\
Return-Path: <>
Received: from localhost (localhost [127.0.0.1])
\tby mx.example.org (Postfix) with ESMTP id 8287323E380
\tfor <news@example.org>; Sun,  6 Dec 2026 18:26:04 +0000 (UTC)
Message-ID: <cmu-sieve-25209-1796581564-0@mx.example.net>
Date: Sun, 06 Dec 2026 18:26:04 +0000
X-Sieve: CMU Sieve 3.0
X-Sieve-Action: reject
From: Mail Sieve Subsystem <postmaster@example.org>
To: <news@example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
\tboundary="25209/mx.example.net"
Subject: Automatically rejected mail
Auto-Submitted: auto-replied (rejected)

This is a MIME-encapsulated message

--25209/mx.example.net
Content-Type: text/plain; charset=utf-8
Content-Disposition: inline
Content-Transfer-Encoding: 8bit

Your message was automatically rejected by Sieve, a mail
filtering language.

The following reason was given:
Messages from this sender are not accepted.

--25209/mx.example.net
Content-Type: message/disposition-notification

Reporting-UA: mx.example.net; Cyrus 3.6.1-Debian-3.6.1-4+deb12u5/CMU Sieve 3.0
Final-Recipient: rfc822; {final}
Original-Message-ID: <1796581564@example.org>
Disposition: automatic-action/MDN-sent-automatically; deleted

--25209/mx.example.net
Content-Type: message/rfc822

Return-Path: <news@example.org>
Received: from mx.example.org (localhost [127.0.0.1])
\t by mx.example.net (Cyrus 3.6.1-Debian-3.6.1-4+deb12u5) with LMTPA;
\t Sun, 06 Dec 2026 18:26:04 +0000
X-Sieve: CMU Sieve 3.0
Received: from app.example.org (localhost [127.0.0.1])
\tby mx.example.org (Postfix) with ESMTP id 665DA23E37E
\tfor <{envelope}>; Sun,  6 Dec 2026 18:26:04 +0000 (UTC)
From: Newsletter <news@example.org>
To: {to}
Subject: Newsletter 8
Message-ID: <1796581564@example.org>

Hello,

--25209/mx.example.net--
"""

FAILED = FAILED_KIND
DELAYED = DELAYED_DAYS_KIND

VACATION = """\
Return-Path: <>
Message-ID: <cmu-sieve-25614-1796581564-0@mx.example.net>
Date: Sun, 06 Dec 2026 18:26:04 +0000
X-Sieve: CMU Sieve 3.0
X-Sieve-Action: vacation
From: <ola.brekke@example.net>
To: <news@example.org>
Subject: Auto: Newsletter 9
In-Reply-To: <1796581565@example.org>
Auto-Submitted: auto-replied (vacation)
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

I am out of the office until 4 January and will read your message when I am back.
"""


def _raw(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def _rejection(final: str, to: str, envelope: str = "") -> bytes:
    return _raw(REJECTION.format(final=final, to=to, envelope=envelope or to))


def _postfix(recipient: str, reply: str, status: str, kind: tuple[str, str, str]) -> bytes:
    """Postfix's notice of an lmtpd reply (LMTP answers after the message: no stage)."""
    notice = postfix_notice(recipient, reply, status=status, kind=kind, stage=None,
                            remote="127.0.0.1")  # fmt: skip
    return _raw(notice)


def _verdicts(raw: bytes) -> list[tuple[str, int | None, str | None]]:
    _, found = classify_mail(raw)
    return [(v.recipient, v.status, v.delivery) for v in found]


def test_cyruss_rejection_notice_reports_the_address_sent_to_not_its_internal_user() -> None:
    # Final-Recipient "mira.solberg@internal": before round 50 that was the recipient reported
    raw = _rejection("mira.solberg@internal", "mira.solberg@example.net")
    assert _verdicts(raw) == [("mira.solberg@example.net", 4, "failed")]


def test_a_bare_user_at_a_dotless_domain_is_matched_by_the_received_for_too() -> None:
    raw = _rejection("mira.solberg@internal", "Mira <info@example.net>", "mira.solberg@example.net")
    assert _verdicts(raw) == [("mira.solberg@example.net", 4, "failed")]


def test_a_qualified_final_recipient_is_kept() -> None:
    # Pigeonhole's (round 35) and any report naming a domain of the internet: as it says
    raw = _rejection("mira.solberg@example.net", "mira.solberg@example.net")
    assert _verdicts(raw) == [("mira.solberg@example.net", 4, "failed")]
    raw = _rejection("mira@mail.example.net", "mira.solberg@example.net")
    assert _verdicts(raw) == [("mira@mail.example.net", 4, "failed")]


def test_two_addresses_with_the_users_local_part_leave_the_report_as_it_is() -> None:
    raw = _rejection("mira@internal", "mira@example.net, mira@example.com")
    assert _verdicts(raw) == [("mira@internal", 4, "failed")]


@pytest.mark.parametrize(
    ("reply", "status", "kind", "expected"),
    [
        (
            "550-Mailbox unknown.  Either there is no mailbox associated with this\n"
            "    550-name or you do not have authorization to see it. 550 5.1.1 User unknown\n"
            "    (in reply to RCPT TO command)",
            "5.1.1", FAILED, (2, "failed"),
        ),
        (
            "452 4.2.2 Over quota\n    SESSIONID=<mx.example.net-1796581594-25236-1-1383> (in reply"
            " to RCPT TO\n    command)",
            "4.2.2", DELAYED, (5, "deferred"),
        ),
        (
            "552 5.2.2 Over quota\n    SESSIONID=<mx.example.net-1796581564-25243-1-9406> (in reply"
            " to RCPT TO\n    command)",
            "5.2.2", FAILED, (5, "failed"),
        ),
        (
            "550-You do not have\n    permission to post a message to this mailbox. 550-Please"
            " contact the owner\n    of this mailbox in order to submit 550-your message, or"
            " postmaster if you\n    believe you 550-received this message in error. 550 5.7.1"
            " Permission denied\n    (in reply to RCPT TO command)",
            "5.7.1", FAILED, (4, "failed"),
        ),
        (
            "550 5.7.1 I did not subscribe to this list.\n    Please take me off it. (in reply"
            " to end of DATA command)",
            "5.7.1", FAILED, (4, "failed"),
        ),
    ],
)  # fmt: skip
def test_lmtpds_own_replies_in_postfixs_notices(
    reply: str, status: str, kind: tuple[str, str, str], expected: tuple[int, str]
) -> None:
    raw = _postfix("tomas.lind@example.net", reply, status, kind)
    assert _verdicts(raw) == [("tomas.lind@example.net", *expected)]


def test_cyruss_vacation_reply_is_no_bounce() -> None:
    report, found = classify_mail(_raw(VACATION))
    assert report.kind is Kind.AUTOREPLY
    assert all(v.status is None for v in found)


def test_the_cyrus_cases_are_a_committed_set() -> None:
    assert_committed_set(
        CYRUS_CASES,
        ("cyrus_postfix", "cyrus_exim", "cyrus_sendmail"),
        cases=(12, 12, 12),
        rows=(15, 15, 15),
        senders=36,
        split="dev",
        statuses={None, 2, 3, 4, 5, 7},
    )
    assert "cyrus-imapd" in cyrus.PACKAGES
