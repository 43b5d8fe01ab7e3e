"""SMTP content-filter proxies in front of a receiving Postfix in other MTAs' notices (issue #16,
round 67): clamsmtpd 1.10 with clamd and proxsmtpd 1.10 with filters of ours, run from Debian
12's packages, as Postfix 3.7, Exim 4.96 and Sendmail 8.17 wrote their notices on loopback
(``bench/bounce_accuracy/mtas/proxies_*.py``; trimmed, domains and dates changed), and the
round's case file. Round 67 measured them once; its two rules read proxsmtpd's stock
FilterReject, "530 Email Rejected", as a refusal by the site's policy where Sendmail's report
names no stage for it, and Exim's final notice of a temporary reply ("451 Local Error: retry
timeout exceeded" under Exim's Status 5.0.0) as a message that ran out of retries.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import PROXIES_CASES
from postline.bounce.classify import classify_reply
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    DATA_STAGE,
    FAILED_KIND,
    WARNING_LINE_KIND,
    exim_notice,
    postfix_notice,
    sendmail_notice,
    sendmail_report,
)

ADDRESS = "una.ef@example.net"
MAIL = "MAIL FROM command"
GREETING = "initial greeting"
# The proxies' refusals (clamsmtpd's Action bounce, proxsmtpd's filters of ours and its
# FilterType reject), the command they answer, and their labels.
REFUSALS = [
    ("550 Virus Detected; Content Rejected", DATA_STAGE, 4),
    ("550 5.7.1 Message refused by the content filter of this site", DATA_STAGE, 4),
    (
        "550 Content Rejected; The message carries an attachment type this site does not accept",
        DATA_STAGE,
        4,
    ),
    ("550 Content Rejected; Content Rejected", DATA_STAGE, 4),
    ("530 Email Rejected", MAIL, 4),
]
# Their temporary refusals at every try: the stage, the warning's label and the final's.
DEFERRALS = [
    ("451 Local Error", DATA_STAGE, 7, 3),
    ("421 Server busy, too many connections", GREETING, 4, 4),
]


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


@pytest.mark.parametrize(("reply", "stage", "status"), REFUSALS)
def test_the_proxies_refusals_in_postfixs_notices(reply: str, stage: str, status: int) -> None:
    raw = postfix_notice(ADDRESS, reply, status="5.0.0", kind=FAILED_KIND, stage=stage)
    assert _verdict(raw) == (ADDRESS, status, "failed")


@pytest.mark.parametrize(("reply", "stage", "warning", "final"), DEFERRALS)
def test_their_deferrals_in_postfixs_warning_and_final_notice(
    reply: str, stage: str, warning: int, final: int
) -> None:
    delayed = postfix_notice(ADDRESS, reply, status="4.0.0", kind=WARNING_LINE_KIND, stage=stage)
    assert _verdict(delayed) == (ADDRESS, warning, "deferred")
    failed = postfix_notice(ADDRESS, reply, status="4.0.0", kind=FAILED_KIND, stage=stage)
    assert _verdict(failed) == (ADDRESS, final, "failed")


def test_exims_final_notice_of_a_temporary_reply_after_its_retry_time_is_an_expiry() -> None:
    # Exim writes Status 5.0.0 and adds ": retry timeout exceeded" to the last reply; without
    # the rule, the proxy's "Local Error" read the receiving server's error (7).
    reply = "451 Local Error"
    warning = exim_notice(ADDRESS, reply, after="end of data", delayed=True)
    assert _verdict(warning) == (ADDRESS, 7, "deferred")
    final = exim_notice(ADDRESS, reply, after="end of data", expired=True)
    assert _verdict(final) == (ADDRESS, 3, "failed")


def test_exims_final_notice_keeps_a_cause_the_temporary_reply_names() -> None:
    reply = "452 4.2.2 Mailbox full"
    final = exim_notice(ADDRESS, reply, after=f"RCPT TO:<{ADDRESS}>", expired=True)
    assert _verdict(final)[1] == 5
    # a permanent reply with the receiving server's words stays its error
    assert classify_reply(550, "5.0.0", "550 Local Error").status == 7


def test_proxsmtpds_filter_reject_in_sendmails_notice_is_a_refusal() -> None:
    # Sendmail's report of a refused MAIL names no stage for the recipient; without the rule
    # the bare 530 read on hold (99).
    reply = "530 Email Rejected"
    raw = sendmail_notice(
        "... while talking to [127.0.0.1]:\n>>> MAIL From:<news@example.org> SIZE=366\n"
        f"<<< {reply}\n554 5.0.0 Service unavailable",
        [sendmail_report(ADDRESS, status="5.0.0", reply=reply, remote=False, actual=ADDRESS)],
        errors=f"<{ADDRESS}>\n    (reason: {reply})\n",
    )
    assert _verdict(raw) == (ADDRESS, 4, "failed")


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("530 5.7.0 Authentication required", 7),
        ("550 Email rejected: no such user here", 2),
    ],
)
def test_other_530s_and_email_rejected_words_keep_their_reading(reply: str, status: int) -> None:
    code, _, rest = reply.partition(" ")
    enhanced = rest.split()[0] if rest[:1].isdigit() else ""
    assert classify_reply(int(code), enhanced, reply).status == status


def test_the_round_67_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        PROXIES_CASES,
        ("proxies_postfix", "proxies_exim", "proxies_sendmail"),
        cases=(9, 9, 9),
        rows=(13, 13, 13),
        delayed=(4, 4, 4),
        senders=27,
    )
