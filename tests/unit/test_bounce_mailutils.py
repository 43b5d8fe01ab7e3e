"""GNU Mailutils' delivery agents failing behind an MTA (issue #16, round 62), as Mailutils
3.15 (Debian's mailutils-mda 1:3.15-4) and Postfix, Exim and Sendmail wrote them on loopback
(``bench/bounce_accuracy/mtas/mailutils.py``; trimmed, domains and dates changed), and the
round's case file. The tests marked so fail without round 62's rules: ``mda``'s "cannot open
mailbox <path>: Permission denied" read as a policy's denial (4), lmtpd's "temporary failure,
try again later" read as a delay with no cause (3, and 99 in Postfix's final notice), and
Mailutils' Sieve rejection notice reported at the host's name rather than the address sent to.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import mailutils
from bench.bounce_accuracy.mtas.cases import MAILUTILS_CASES
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    DELAYED_DAYS_KIND,
    FAILED_KIND,
    exim_local_failure,
    exim_notice,
    postfix_notice,
    sendmail_notice,
    sendmail_report,
)

FAILED = FAILED_KIND
DELAYED = DELAYED_DAYS_KIND
EXPIRED = FAILED  # Postfix's final notice after the queue lifetime reads as any other

NOT_WRITABLE = "mda: error: cannot open mailbox /var/spool/mail/lena.frost: Permission denied"
TEMPFAIL = "450 4.1.0 lena.frost: temporary failure, try again later"

RECIPIENT = "lena.frost@example.net"


def _exim(output: str) -> str:
    return exim_notice(RECIPIENT, exim_local_failure(RECIPIENT, output), own=True)


def _sendmail(output: str) -> str:
    """Sendmail's notice of the local mailer's exit 69 (EX_UNAVAILABLE) and its output."""
    report = sendmail_report(
        RECIPIENT, status="5.5.0", remote=False, actual="lena.frost@mx.example.net",
        diagnostic="X-Unix; 69",
    )  # fmt: skip
    return sendmail_notice(
        f"{output}\n554 5.0.0 Service unavailable", [report],
        errors=f"<{RECIPIENT}>\n    (reason: Service unavailable)\n", host="mx.example.net",
    )  # fmt: skip


# Mailutils' own Sieve rejection notice (mda or lmtpd, sent through the MTA; no Subject, no
# From of its own: Sendmail added one from the envelope sender).
SIEVE = """\
Return-Path: <MAILER-DAEMON@mx.example.net>
From: MAILER-DAEMON@mx.example.net
To: news@example.org
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="1804289383-1796593257=:12615"

--1804289383-1796593257=:12615
Content-Type: text/plain;charset=UTF-8
Content-Transfer-Encoding: 8bit

The original message was received at Sun, Dec 06 21:40:57 2026 +0000 from news@example.org.
Message was refused by recipient's mail filtering program.
Reason given was as follows:

Messages from this sender are not accepted.
--1804289383-1796593257=:12615
Content-Type: message/delivery-status

Reporting-UA: sieve; GNU Mailutils 3.15
Arrival-Date: Sun, Dec 06 21:40:56 2026 UTC
Final-Recipient: RFC822; {final}
Action: deleted
Disposition: automatic-action/MDN-sent-automatically;deleted
Last-Attempt-Date: Sun, Dec 06 21:40:57 2026 +0000

--1804289383-1796593257=:12615
Content-Type: message/rfc822

From: Newsletter <news@example.org>
To: {to}
Subject: Newsletter 5

Hello,

--1804289383-1796593257=:12615--
"""


def _raw(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def _postfix(text: str, status: str, kind: tuple[str, str, str], *, reply: bool = False) -> bytes:
    if reply:
        notice = postfix_notice(RECIPIENT, text, status=status, kind=kind, stage=None,
                                remote="127.0.0.1")  # fmt: skip
        return _raw(notice)
    # pipe(8)'s report gives the command's output alone; its text part, its words before it
    diagnostic = f"x-unix; {text.partition('output: ')[2] or text}"
    notice = postfix_notice(RECIPIENT, text, status=status, kind=kind, remote=None, text=text,
                            diagnostic=diagnostic)  # fmt: skip
    return _raw(notice)


def _verdicts(raw: bytes) -> list[tuple[str, int | None, str | None]]:
    _, found = classify_mail(raw)
    return [(v.recipient, v.status, v.delivery) for v in found]


# --- mda cannot open the mailbox: the receiving host's error, no policy (fail without) ---


def test_mdas_mailbox_it_cannot_open_in_postfixs_notice_is_the_hosts_error() -> None:
    raw = _postfix(f"service unavailable. Command output: {NOT_WRITABLE}", "5.3.0", FAILED)
    assert _verdicts(raw) == [("lena.frost@example.net", 7, "failed")]


def test_mdas_mailbox_it_cannot_open_in_exims_notice_is_the_hosts_error() -> None:
    raw = _raw(_exim(NOT_WRITABLE))
    assert _verdicts(raw) == [("lena.frost@example.net", 7, "failed")]


def test_mdas_mailbox_it_cannot_open_in_sendmails_notice_is_the_hosts_error() -> None:
    raw = _raw(_sendmail(NOT_WRITABLE))
    assert _verdicts(raw) == [("lena.frost@example.net", 7, "failed")]


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 5.7.1 Permission denied", 4),  # Cyrus's lmtpd: no post right (round 50)
        ("554 5.7.1 <lena.frost@example.net>: Relay access denied", 4),
        ("550 5.7.1 Delivery denied: you may not open a mailbox here", 4),
    ],
)
def test_a_servers_own_denial_stays_a_refusal(reply: str, status: int) -> None:
    raw = _postfix(reply, "5.7.1", FAILED, reply=True)
    assert _verdicts(raw) == [("lena.frost@example.net", status, "failed")]


# --- lmtpd's "temporary failure, try again later": the destination failing for now ---


def test_lmtpds_temporary_failure_in_a_warning_is_the_destinations_error() -> None:
    raw = _postfix(TEMPFAIL, "4.1.0", DELAYED, reply=True)
    assert _verdicts(raw) == [("lena.frost@example.net", 7, "deferred")]


def test_lmtpds_temporary_failure_until_the_lifetime_ran_out_is_the_expiry() -> None:
    raw = _postfix(TEMPFAIL, "4.1.0", EXPIRED, reply=True)
    assert _verdicts(raw) == [("lena.frost@example.net", 3, "failed")]


def test_a_temporary_failure_that_names_its_cause_keeps_it() -> None:
    quota = "450 4.1.0 tomas.lind: mailbox quota exceeded for this recipient"
    raw = _postfix(quota, "4.1.0", DELAYED, reply=True)
    assert _verdicts(raw) == [("lena.frost@example.net", 5, "deferred")]


# --- Mailutils' Sieve rejection notice: the address sent to ---


def test_sieve_notice_at_the_hosts_name_reports_the_address_sent_to() -> None:
    # Final-Recipient "mira.solberg@mx.example.net" (Sendmail's host): read as that before
    raw = _raw(SIEVE.format(final="mira.solberg@mx.example.net", to="mira.solberg@example.net"))
    assert _verdicts(raw) == [("mira.solberg@example.net", 4, "failed")]


def test_sieve_notice_at_a_dotless_host_reports_the_address_sent_to() -> None:
    raw = _raw(SIEVE.format(final="mira.solberg@vm", to="mira.solberg@example.net"))
    assert _verdicts(raw) == [("mira.solberg@example.net", 4, "failed")]


@pytest.mark.parametrize(
    ("final", "to"),
    [
        ("mira.solberg@example.com", "mira.solberg@example.net"),  # another domain
        ("mira.solberg@mx.example.com", "mira.solberg@example.net"),  # a host of another
        ("mira@mx.example.net", "mira.solberg@example.net"),  # another user
        ("mira.solberg@notexample.net", "mira.solberg@example.net"),  # no dot between
    ],
)
def test_a_final_recipient_that_is_no_host_of_the_address_is_kept(final: str, to: str) -> None:
    raw = _raw(SIEVE.format(final=final, to=to))
    assert _verdicts(raw) == [(final, 4, "failed")]


def test_an_mtas_report_naming_its_own_hosts_address_is_kept() -> None:
    # an MTA's DSN (Reporting-MTA) for user@<its host>: the shared corpus's rfc3464-04 is so
    mta = "Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient:"
    text = SIEVE.replace("Reporting-UA: sieve; GNU Mailutils 3.15\n", "")
    text = text.replace("Arrival-Date: Sun, Dec 06 21:40:56 2026 UTC\nFinal-Recipient:", mta)
    text = text.replace("Action: deleted", "Action: failed\nStatus: 5.0.0")
    raw = _raw(text.format(final="mira.solberg@mx.example.net", to="mira.solberg@example.net"))
    assert [r for r, _, _ in _verdicts(raw)] == ["mira.solberg@mx.example.net"]


# --- Mailutils' other words, read right before the round ---


@pytest.mark.parametrize(
    ("text", "status", "reply", "expected"),
    [
        ("user unknown. Command output: mda: error: vera.stone: no such user", "5.1.1", False, 2),
        (
            "service unavailable. Command output: mda: error: tomas.lind: mailbox quota"
            " exceeded for this recipient",
            "5.3.0", False, 5,
        ),
        (
            "service unavailable. Command output: mda: error: eva.dahl: message would exceed"
            " maximum mailbox size for this recipient",
            "5.3.0", False, 5,
        ),
        ("550 5.1.1 User unknown", "5.1.1", True, 2),
        ("553 5.1.8 tomas.lind: mailbox quota exceeded for this recipient", "5.1.8", True, 5),
    ],
)  # fmt: skip
def test_mailutils_words_in_postfixs_notices(
    text: str, status: str, reply: bool, expected: int
) -> None:
    raw = _postfix(text, status, FAILED, reply=reply)
    assert _verdicts(raw) == [("lena.frost@example.net", expected, "failed")]


def test_the_mailutils_cases_are_a_committed_set() -> None:
    assert_committed_set(
        MAILUTILS_CASES,
        ("mailutils_postfix", "mailutils_exim", "mailutils_sendmail"),
        cases=(12, 12, 12),
        rows=(16, 16, 16),
        senders=36,
        statuses={2, 3, 4, 5, 7},
    )
    assert "mailutils-mda" in mailutils.PACKAGES
