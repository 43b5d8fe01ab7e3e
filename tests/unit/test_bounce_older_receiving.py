"""Older MTAs built from source as the receiving server, their own refusals in other MTAs'
notices (issue #16, round 76): XMail 1.27 and ZMailer 3.0.1 behind Postfix 3.7, Exim 4.96 and
Sendmail 8.17 on loopback (``bench/bounce_accuracy/mtas/xmail_receiving_*.py``,
``zmailer_receiving_*.py``; trimmed, domains and dates changed), and the round's case file.
Round 76 measured them once; its rules read XMail's size refusal ("552 Message exceeds fixed
maximum message size", SMTPSvr.cpp), answered at MAIL, as the message's size (8), not the
sender's refusal.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import OLDER_RECEIVING_CASES
from postline.bounce.classify import classify_reply
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import FAILED_KIND, exim_notice, postfix_notice

ADDRESS = "una.ef@example.net"
MAIL = "MAIL FROM command"
RCPT = "RCPT TO command"
XMAIL_SIZE = "552 Message exceeds fixed maximum message size"
# XMail 1.27's refusals (SMTPSvr.cpp) whose words name their cause, the command they answer,
# and their labels.
XMAIL_REFUSALS = [
    (f"550 Mailbox unavailable <{ADDRESS}>", RCPT, 2),
    (f"550 Account disabled <{ADDRESS}>", RCPT, 2),
    (
        f"552 Requested mail action aborted: exceeded storage allocation - <{ADDRESS}>",
        RCPT,
        5,
    ),
    (f"557 Access denied <{ADDRESS}> for user <news@example.org>", RCPT, 4),
    ("550 Relay denied", RCPT, 4),
    ("505 Your domain has no DNS/MX entries", MAIL, 4),
    ("504 You are registered as spammer", MAIL, 4),
    ("551 Server access forbidden by your IP", MAIL, 4),
    (XMAIL_SIZE, MAIL, 8),
]

# ZMailer 3.0.1's refusals (smtpserver/smtpcmds.c; its router's for a name it cannot route),
# the command they answer, and their labels.
ZMAILER_REFUSALS = [
    (
        f"554 5.0.0 Hi [192.0.2.7], unresolvable address: <{ADDRESS}>; nosuchuser; {ADDRESS}",
        RCPT,
        2,
    ),
    (f"550 5.7.1 Hello [192.0.2.7], Policy rejection on the target address: <{ADDRESS}>", RCPT, 4),
    (
        "553 5.7.1 Hello [192.0.2.7], for your MAIL FROM address <news@example.org> policy"
        " analysis reported: Your address is not liked source for email",
        MAIL,
        4,
    ),
    (
        "550 5.7.1 Hello [192.0.2.7], Policy analysis reported: This is not accepted relay target"
        f" rcpt=<{ADDRESS}>",
        RCPT,
        4,
    ),
    (
        "552 5.3.4 This message is larger, than our maximum acceptable incoming message size of"
        "  20000  chars.",
        MAIL,
        8,
    ),
]
ZMAILER_NO_DNS = (
    "553 5.4.3 Hello [192.0.2.7], for MAIL FROM address <news@gone.example> the policy analysis"
    " reports DNS error with your source domain."
)
ZMAILER_DNS_TEMPORARY = (
    "451 4.4.3 Hello [192.0.2.7], for your input: <news@flaky.example> policy analysis reports"
    " temporary DNS error with your source domain."
)


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


@pytest.mark.parametrize(("reply", "command", "status"), XMAIL_REFUSALS)
def test_the_receiving_xmails_refusals_in_postfixs_notices(
    reply: str, command: str, status: int
) -> None:
    raw = postfix_notice(ADDRESS, reply, status="5.0.0", kind=FAILED_KIND, stage=command)
    assert _verdict(raw) == (ADDRESS, status, "failed")


def test_xmails_size_refusal_at_mail_in_exims_notice_is_the_messages_size() -> None:
    # Without the rule the words named no reason the classifier knew, and a refusal answered
    # to MAIL FROM read as the sender's (4).
    after = "pipelined MAIL FROM:<news@example.org> SIZE=31522"
    raw = exim_notice(ADDRESS, XMAIL_SIZE, after=after)
    assert _verdict(raw) == (ADDRESS, 8, "failed")
    assert classify_reply(552, "", XMAIL_SIZE).status == 8


@pytest.mark.parametrize(("reply", "command", "status"), ZMAILER_REFUSALS)
def test_the_receiving_zmailers_refusals_in_postfixs_notices(
    reply: str, command: str, status: int
) -> None:
    raw = postfix_notice(ADDRESS, reply, status="5.0.0", kind=FAILED_KIND, stage=command)
    assert _verdict(raw) == (ADDRESS, status, "failed")


def test_zmailers_check_of_the_senders_domain_in_exims_notices_is_the_senders() -> None:
    # Without the rule X.4.3 (a routing server's failure) and "DNS error" read 7, the
    # receiving server's trouble, in Exim's final notice and in its warning.
    final = exim_notice(ADDRESS, ZMAILER_NO_DNS, after="MAIL FROM:<news@gone.example> SIZE=1240")
    assert _verdict(final) == (ADDRESS, 4, "failed")
    after = "MAIL FROM:<news@flaky.example> SIZE=1240"
    warning = exim_notice(ADDRESS, ZMAILER_DNS_TEMPORARY, after=after, delayed=True)
    assert _verdict(warning) == (ADDRESS, 4, "deferred")
    expired = exim_notice(ADDRESS, ZMAILER_DNS_TEMPORARY, after=after, expired=True)
    assert _verdict(expired) == (ADDRESS, 4, "failed")
    assert classify_reply(553, "5.4.3", ZMAILER_NO_DNS).status == 4
    assert classify_reply(451, "4.4.3", ZMAILER_DNS_TEMPORARY).status == 4


def test_a_dns_error_of_the_recipients_domain_stays_the_servers() -> None:
    reply = "451 4.4.3 Hello [192.0.2.7], policy analysis reports temporary DNS error with the"
    reply += " target domain: <una.ef@example.net>"
    assert classify_reply(451, "4.4.3", reply).status == 7


def test_the_round_76_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        OLDER_RECEIVING_CASES,
        (
            "xmail_receiving_postfix", "xmail_receiving_exim", "xmail_receiving_sendmail",
            "zmailer_receiving_postfix", "zmailer_receiving_exim", "zmailer_receiving_sendmail",
        ),
        cases=(15, 15, 15, 8, 8, 8),
        rows=(17, 16, 16, 9, 9, 9),
        delayed=(2, 1, 1, 1, 1, 1),
        senders=69,
    )  # fmt: skip
