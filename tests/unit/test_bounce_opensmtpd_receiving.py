"""A receiving OpenSMTPD's own rules and built-in filters in other MTAs' notices, and
OpenSMTPD's own notices of a local delivery program that failed after it took the mail (issue
#16, round 65), as Postfix 3.7, Exim 4.96, Sendmail 8.17 and OpenSMTPD 6.8 wrote them on
loopback (``bench/bounce_accuracy/mtas/opensmtpd_receiving_*.py``; trimmed, domains and dates
changed), and the round's case file.

Round 65 measured them once; the one rule written (mailer-error's "exited abnormally",
OpenSMTPD's words for its mda's failure) makes its delay warning read 7 where it read 3. The
other misses have no rule: OpenSMTPD's "550 Invalid recipient" is the same text for a
refused relay, a sender refused by a ``match ... reject`` rule and an unknown user; its
"524 5.2.4 Mailing list expansion problem: <address>" for an address its virtual table lacks
is the evidence the wider corpus's unseen set labels 7 (a list's expansion failed); and
Sendmail's Status 4.4.7 after a 451 4.7.1 is a label decision left open. The tests hold what
the classifier reads for them today.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import OPENSMTPD_RECEIVING_CASES
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import exim_notice, postfix_kind, postfix_notice, sendmail_final

RCPT = "RCPT\n    TO command"
MAIL = "MAIL FROM command"
DATA = "DATA command"
END = "end of DATA command"
ADDRESS = "una.ef@example.net"

# OpenSMTPD's own notice (its bounce.c templates), permanent or a delay warning.
OPENSMTPD = """\
Return-Path: <>
Subject: Delivery status notification: {kind}
From: Mailer Daemon <MAILER-DAEMON@mx.example.net>
To: news@example.org
MIME-Version: 1.0
Content-Type: multipart/mixed;boundary="1715239442152528518/mx.example.net"

This is a MIME-encapsulated message.

--1715239442152528518/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

    Hi!

    This is the MAILER-DAEMON, please DO NOT REPLY to this email.

{intro}

una.ef@example.net: {reason}

{outro}
    Below is a copy of the original message:

--1715239442152528518/mx.example.net
Content-Description: Delivery Report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; una.ef@example.net
Action: {action}
Status: {status}

--1715239442152528518/mx.example.net--
"""
FAILED_INTRO = """\
    An error has occurred while attempting to deliver a message for
    the following list of recipients:"""
DELAYED_INTRO = """\
    A message is delayed for more than {delay} for the following
    list of recipients:"""
DELAYED_OUTRO = """\
    Please note that this is only a temporary failure report.
    The message is kept in the queue for up to 7 days.
    You DO NOT NEED to re-send the message to these recipients.
"""

# The receiving OpenSMTPD's refusals (smtpd.conf(5)'s rules and built-in filters; the
# filters' texts are the administrator's), the stage they answer, and what they read.
REFUSALS = [
    ("550 Invalid recipient: <una.ef@example.net>", RCPT, 2),  # a userbase's unknown user
    ("554 5.3.4 Message too big for system: Transaction failed, message too big", END, 8),
    ("550 5.7.1 Sender address rejected by local policy", MAIL, 4),
    ("550 Recipient no longer accepts mail", RCPT, 2),
    ("554 5.7.1 Message refused", DATA, 4),
    ("554 5.7.1 Message rejected as spam", END, 4),
    ("550 5.7.1 Your IP address is not allowed to send mail here", MAIL, 4),
]


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def _postfix(reply: str, stage: str, *, delayed: bool = False) -> str:
    status = reply[4:9] if reply[4:5] in "45" and reply[5:6] == "." else reply[0] + ".0.0"
    return postfix_notice(
        ADDRESS, reply, status=status, kind=postfix_kind(delayed=delayed), stage=stage
    )


def _opensmtpd(reason: str, status: str, *, delay: str = "") -> str:
    if not delay:
        return OPENSMTPD.format(kind="failed", intro=FAILED_INTRO, reason=reason, outro="",
                                action="failed", status=status)  # fmt: skip
    return OPENSMTPD.format(kind="delayed", intro=DELAYED_INTRO.format(delay=delay),
                            reason=reason, outro=DELAYED_OUTRO, action="delayed",
                            status=status)  # fmt: skip


@pytest.mark.parametrize(("reply", "stage", "status"), REFUSALS)
def test_the_receiving_opensmtpds_refusals_in_postfixs_notices(
    reply: str, stage: str, status: int
) -> None:
    assert _verdict(_postfix(reply, stage)) == (ADDRESS, status, "failed")


@pytest.mark.parametrize(
    ("reply", "command", "status"),
    [
        ("550 Invalid recipient: <una.ef@example.net>", "RCPT TO:<una.ef@example.net>", 2),
        ("550 5.7.1 Your IP address is not allowed to send mail here",
         "MAIL FROM:<news@example.org> SIZE=1628", 4),
        ("554 5.3.4 Message too big for system: Transaction failed, message too big",
         "end of data", 8),
        ("550 no rDNS is so 80s", "initial connection", 4),
    ],
)  # fmt: skip
def test_its_refusals_in_exims_notices(reply: str, command: str, status: int) -> None:
    assert _verdict(exim_notice(ADDRESS, reply, after=command)) == (ADDRESS, status, "failed")


def test_its_invalid_recipient_in_a_sending_sendmails_transcript() -> None:
    reply = "550 Invalid recipient: <una.ef@example.net>"
    session = f"<<< {reply}\n550 5.1.1 <una.ef@example.net>... User unknown"
    raw = sendmail_final(ADDRESS, reply, session, status="5.1.1")
    assert _verdict(raw) == (ADDRESS, 2, "failed")


@pytest.mark.parametrize("reply", ["550 no rDNS is so 80s", "550 no FCrDNS is so 80s"])
def test_its_connect_filters_in_postfixs_notice_in_place_of_the_greeting(reply: str) -> None:
    # Postfix names no command for a refused greeting and gives the notice Status 4.0.0.
    raw = _postfix(reply, RCPT).replace(
        f"said: {reply} (in reply to {RCPT})", f"refused to talk to me: {reply}"
    )
    raw = raw.replace("Status: 5.0.0", "Status: 4.0.0")
    assert "refused to talk to me" in raw
    assert _verdict(raw) == (ADDRESS, 4, "failed")


@pytest.mark.parametrize(
    ("reply", "stage", "warning", "final"),
    [
        ("451 4.7.1 Please try again later", RCPT, 4, 4),
        ("421 4.3.2 Service not available, closing transmission channel", MAIL, 7, 3),
    ],
)
def test_its_temporary_filters_in_postfixs_warning_and_final_notice(
    reply: str, stage: str, warning: int, final: int
) -> None:
    assert _verdict(_postfix(reply, stage, delayed=True)) == (ADDRESS, warning, "deferred")
    assert _verdict(_postfix(reply, stage)) == (ADDRESS, final, "failed")


def test_opensmtpds_own_notice_of_an_mda_that_exited_non_zero() -> None:
    assert _verdict(_opensmtpd("exited abnormally", "5.3.0")) == (ADDRESS, 7, "failed")


def test_opensmtpds_own_delay_warning_of_an_mda_that_exits_75_names_its_failure() -> None:
    # The round's rule: its 4.3.0 names no reason, and without the words the warning read
    # as a delay with no reason (3); the receiving site's delivery program failed (7), as
    # lda_cases.yaml labels a local program's EX_TEMPFAIL on a warning.
    raw = _opensmtpd("exited abnormally", "4.3.0", delay="1 minute")
    assert _verdict(raw) == (ADDRESS, 7, "deferred")


def test_opensmtpds_expiry_on_its_delay_template_after_the_mda_kept_failing() -> None:
    raw = _opensmtpd("Envelope expired", "4.4.7", delay="0 seconds")
    assert _verdict(raw) == (ADDRESS, 3, "failed")


def test_what_has_no_rule_reads_as_today() -> None:
    # A refused relay and a "match ... reject" of the sender (labelled 4) get OpenSMTPD's
    # one text for a refused envelope, the unknown user's: no rule can tell them apart.
    assert _verdict(_postfix("550 Invalid recipient: <una.ef@example.net>", RCPT))[1] == 2
    # A virtual table's missing address (labelled 2): the wider corpus's unseen set labels
    # the same OpenSMTPD reply 7 (a list's expansion failed); a rule reading it 2 changed
    # that row for the worse, so it was not committed: a label decision (round 65).
    reply = "524 5.2.4 Mailing list expansion problem: <una.ef@example.net>"
    assert _verdict(_postfix(reply, RCPT))[1] == 7


def test_the_round_65_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        OPENSMTPD_RECEIVING_CASES,
        ("opensmtpd_receiving_postfix", "opensmtpd_receiving_exim", "opensmtpd_receiving_sendmail"),
        cases=(17, 15, 15),
        rows=(20, 17, 17),
        senders=47,
    )
