"""A receiving Sendmail's own checks in other MTAs' notices (issue #16, round 63), as Postfix
3.7, Exim 4.96 and Sendmail 8.17 wrote them on loopback
(``bench/bounce_accuracy/mtas/sendmail_checks_*.py``; trimmed, domains and dates changed), and
the round's case file. Round 63 measured them once: every reply but one read as labelled, and
the one miss (virtusertable's "550 5.0.0 ... No such user here" in a sending Sendmail's
pipelined transcript, read 4) shares its evidence with a shared-corpus row labelled 4
(``lhost-sendmail-27``), so no rule was written: these tests hold what the classifier reads
today, and the last one the evidence behind that decision.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import SENDMAIL_CHECKS_CASES
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    FAILED_KIND,
    WARNING_LINE_KIND,
    exim_notice,
    postfix_notice,
    sendmail_final,
)

RECIPIENT = "una.ef@example.net"
MAIL = "MAIL FROM command"
RCPT = "RCPT TO command"

# The receiving Sendmail's refusals (cf/m4/proto.m4, cf/feature/*.m4, cf/README's examples of
# access map and virtusertable entries), the command they answer, and their labels.
REFUSALS = [
    ("550 5.1.1 <una.ef@example.net>... User unknown", RCPT, 2),
    ("550 5.7.1 <news@example.org>... Access denied", MAIL, 4),
    ("550 5.7.1 <news@example.org>... We don't accept mail from spammers", MAIL, 4),
    ("550 5.2.1 <una.ef@example.net>... Mailbox disabled for this recipient", RCPT, 2),
    ("550 5.0.0 <una.ef@example.net>... Mailbox disabled for una.ef", RCPT, 2),
    ("550 5.0.0 <news@example.org>... Spam not accepted", MAIL, 4),
    ("550 5.0.0 <una.ef@example.net>... No such user here", RCPT, 2),
    ("550 5.7.0 <una.ef@example.net>... Address invalid", RCPT, 2),
    (
        "550 5.7.1 <una.ef@example.net>... Relaying denied. IP name lookup failed [192.0.2.7]",
        RCPT,
        4,
    ),
    (
        "553 5.1.8 <news@gone.example>... Domain of sender address news@gone.example does"
        " not exist",
        MAIL,
        4,
    ),
    ("552 5.2.3 Message size exceeds fixed maximum message size (20000)", MAIL, 8),
    ("550 5.7.1 Rejected: 192.0.2.7 listed at dnsbl.example.org", MAIL, 4),
    ("550 5.7.1 Fix reverse DNS for 192.0.2.7", MAIL, 4),
    ("552 5.6.0 Headers too large (256 max)", "end of DATA command", 4),
]
# Its temporary refusals at every try: the warning's label and the final notice's.
DEFERRALS = [
    ("451 4.1.8 Domain of sender address news@flaky.example does not resolve", "4.1.8", 4),
    ("452 4.4.5 Insufficient disk space; try again later", "4.4.5", 5),
    ("452 4.3.2 Connection rate limit exceeded.", "4.3.2", 4),
    ("452 4.3.2 Too many open connections.", "4.3.2", 4),
    ("450 4.2.2 <una.ef@example.net>... mailbox full", "4.2.2", 5),
]


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def _postfix(reply: str, command: str, action: str, status: str) -> str:
    kind = WARNING_LINE_KIND if action == "delayed" else FAILED_KIND
    sender = "MAILER-DAEMON@mx.example.org (Mail Delivery System)"
    return postfix_notice(RECIPIENT, reply, status=status, kind=kind, stage=command, sender=sender)


@pytest.mark.parametrize(("reply", "command", "status"), REFUSALS)
def test_the_receiving_sendmails_refusals_in_postfixs_notices(
    reply: str, command: str, status: int
) -> None:
    raw = _postfix(reply, command, "failed", reply[4:9])
    assert _verdict(raw) == ("una.ef@example.net", status, "failed")


@pytest.mark.parametrize(("reply", "code", "status"), DEFERRALS)
def test_its_deferrals_in_postfixs_warning_and_final_notice(
    reply: str, code: str, status: int
) -> None:
    assert _verdict(_postfix(reply, MAIL, "delayed", code)) == ("una.ef@example.net", status,
                                                               "deferred")  # fmt: skip
    assert _verdict(_postfix(reply, MAIL, "failed", code)) == ("una.ef@example.net", status,
                                                              "failed")  # fmt: skip


@pytest.mark.parametrize(("reply", "code", "status"), DEFERRALS)
def test_its_deferrals_in_exims_final_notice_after_the_retry_timeout(
    reply: str, code: str, status: int
) -> None:
    raw = exim_notice(RECIPIENT, reply, after="MAIL FROM:<news@example.org>", expired=True)
    assert _verdict(raw) == ("una.ef@example.net", status, "failed")


@pytest.mark.parametrize(("reply", "code", "status"), DEFERRALS)
def test_its_deferrals_in_sendmails_final_notice_under_its_own_4_4_7(
    reply: str, code: str, status: int
) -> None:
    transcript = (
        ">>> MAIL From:<news@example.org> SIZE=568\n"
        f"<<< {reply}\n"
        f"<una.ef@example.net>... Deferred: {reply}\n"
        "Message could not be delivered for 3 minutes\n"
        "Message will be deleted from queue"
    )
    raw = sendmail_final(RECIPIENT, reply, transcript, status="4.4.7", actual=True)
    assert _verdict(raw) == ("una.ef@example.net", status, "failed")


def _pipelined(reply: str) -> str:
    """A sending Sendmail's notice of a refusal at RCPT: it pipelines RCPT and DATA, so its
    transcript shows the refusal after ">>> DATA", then its own "User unknown" line and the
    receiver's 503 to DATA."""
    transcript = (
        ">>> DATA\n"
        f"<<< {reply}\n"
        "550 5.1.1 <una.ef@example.net>... User unknown\n"
        "<<< 503 5.0.0 Need RCPT (recipient)"
    )
    return sendmail_final(RECIPIENT, reply, transcript, status=reply[4:9], actual=True)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 5.1.1 <una.ef@example.net>... User unknown", 2),
        ("550 5.2.1 <una.ef@example.net>... Mailbox disabled for this recipient", 2),
        ("550 5.0.0 <una.ef@example.net>... Mailbox disabled for una.ef", 2),
        ("550 5.7.0 <una.ef@example.net>... Address invalid", 2),
        ("550 5.7.1 <una.ef@example.net>... Relaying denied. IP name lookup failed [192.0.2.7]", 4),
    ],
)
def test_its_refusals_at_rcpt_in_a_sending_sendmails_pipelined_transcript(
    reply: str, status: int
) -> None:
    assert _verdict(_pipelined(reply)) == ("una.ef@example.net", status, "failed")


def test_a_user_unknown_under_5_0_0_after_data_reads_as_the_shared_corpus_labels_it() -> None:
    # The round's one miss (labelled 2, read 4): the shared corpus labels the same evidence,
    # "550 5.0.0 <x>... User unknown" after ">>> DATA" with "503 5.0.0 Need RCPT" (Sendmail's
    # pipelining; lhost-sendmail-27), 4 (filtered). A rule reading it 2 would cost that row,
    # the corpus's one row over its 95 % floor: left to a label decision (round 63).
    assert _verdict(_pipelined("550 5.0.0 <una.ef@example.net>... No such user here"))[1] == 4


def test_the_round_63_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        SENDMAIL_CHECKS_CASES,
        ("sendmail_checks_postfix", "sendmail_checks_exim", "sendmail_checks_sendmail"),
        cases=(20, 20, 20),
        rows=(25, 25, 25),
        delayed=(5, 5, 5),
        senders=60,
    )
