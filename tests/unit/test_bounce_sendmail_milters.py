"""Content-filter milters behind a receiving Sendmail in other MTAs' notices (issue #16, round
70): Sendmail 8.17 with clamav-milter (clamd), spamass-milter (spamd), rspamd's milter and a
milter it cannot reach (F=T, F=R), refusing and deferring as Postfix 3.7, Exim 4.96 and
Sendmail 8.17 wrote it on loopback (``bench/bounce_accuracy/mtas/sendmail_milters_*.py``;
trimmed, domains and dates changed), and the round's case file. Round 70 measured them once;
its rule: a reply whose status is X.3.2 (RFC 3463, "System not accepting network messages"),
Sendmail's "451 4.3.2 Please try again later" for a milter that fails for now or cannot be
reached, is the receiving host's state, not a refusal of the sender at MAIL, and a final
failure of it is an expiry.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import SENDMAIL_MILTERS_CASES
from postline.bounce.classify import classify_reply
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    DATA_STAGE,
    exim_notice,
    postfix_kind,
    postfix_notice,
    sendmail_final,
    sendmail_notice,
    sendmail_report,
)

ADDRESS = "ida.of@example.net"
MAIL = "MAIL FROM command"
# Sendmail's own answer when a milter tempfails or cannot be reached with F=T (srvrsmtp.c's
# MSG_TEMPFAIL): at MAIL FROM while its milter is down, at the end of DATA when clamav-milter's
# clamd is down
TEMPFAIL = "451 4.3.2 Please try again later"
# The filters' refusals at the end of DATA, as the receiving Sendmail gave them
REFUSALS = [
    "554 5.7.1 Command rejected",  # clamav-milter's reject without RejectMsg: Sendmail's words
    "550 5.7.1 Virus found in your message: Local.Test.EICAR.UNOFFICIAL",
    "550 5.7.1 Blocked by SpamAssassin",  # spamass-milter -r
    "554 5.7.1 Gtube pattern",  # rspamd's milter
]
# Sendmail's greeting with its milter down and F=R (and greet_pause's for an early talker)
NOT_ACCEPTING = "554 mx.example.net ESMTP not accepting messages"


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def _postfix(reply: str, stage: str | None, *, delayed: bool = False) -> str:
    kind = postfix_kind(delayed=delayed)
    return postfix_notice(ADDRESS, reply, status=reply[4:9], kind=kind, stage=stage)


def _sendmail(reply: str, command: str, *, final: bool) -> str:
    """A sending Sendmail's warning or final notice of ``reply`` to ``command`` at every
    try: its own Status 4.4.7 in the final notice."""
    last = (
        "Message could not be delivered for 3 minutes\nMessage will be deleted from queue"
        if final
        else "Warning: message still undelivered after 1 minute\n"
        "Will keep trying until message is 3 minutes old"
    )
    transcript = (
        f"... while talking to [192.0.2.25]:\n>>> {command}\n<<< {reply}\n"
        f"<{ADDRESS}>... Deferred: {reply}\n{last}"
    )
    if final:
        return sendmail_final(ADDRESS, reply, transcript.partition(":\n")[2], status="4.4.7")
    report = sendmail_report(ADDRESS, status=reply[4:9], reply=reply, action="delayed")
    return sendmail_notice(transcript, [report])


@pytest.mark.parametrize("reply", REFUSALS)
def test_the_filters_refusals_in_postfixs_and_exims_notices(reply: str) -> None:
    assert _verdict(_postfix(reply, DATA_STAGE)) == (ADDRESS, 4, "failed")
    assert _verdict(exim_notice(ADDRESS, reply, after="end of data")) == (ADDRESS, 4, "failed")


def test_the_milter_down_at_mail_in_postfixs_warning_and_final_notice() -> None:
    # Without the round's rule both read 4: a failure at MAIL was the sender's refusal
    # whatever its status.
    assert _verdict(_postfix(TEMPFAIL, MAIL, delayed=True)) == (ADDRESS, 7, "deferred")
    assert _verdict(_postfix(TEMPFAIL, MAIL)) == (ADDRESS, 3, "failed")


def test_the_milter_down_at_mail_in_exims_warning_and_final_notice() -> None:
    after = "pipelined MAIL FROM:<news@example.org> SIZE=1643"
    warning = exim_notice(ADDRESS, TEMPFAIL, after=after, delayed=True)
    assert _verdict(warning) == (ADDRESS, 7, "deferred")
    final = exim_notice(ADDRESS, TEMPFAIL, after=after, expired=True)
    assert _verdict(final) == (ADDRESS, 3, "failed")


def test_the_milter_down_at_mail_in_sendmails_warning_and_final_under_its_own_4_4_7() -> None:
    command = "MAIL From:<news@example.org> SIZE=567"
    assert _verdict(_sendmail(TEMPFAIL, command, final=False)) == (ADDRESS, 7, "deferred")
    assert _verdict(_sendmail(TEMPFAIL, command, final=True)) == (ADDRESS, 3, "failed")


def test_clamds_failure_after_data_in_postfixs_final_notice_is_an_expiry() -> None:
    # Postfix keeps the reply's 4.3.2 as the final notice's Status: without the round's rule
    # the final read 7, as its warning does.
    assert _verdict(_postfix(TEMPFAIL, DATA_STAGE, delayed=True)) == (ADDRESS, 7, "deferred")
    assert _verdict(_postfix(TEMPFAIL, DATA_STAGE)) == (ADDRESS, 3, "failed")


def test_a_sender_refused_in_words_under_x_3_2_at_mail_is_still_the_senders() -> None:
    reply = "451 4.3.2 <news@example.org>: Sender address rejected: try again later"
    assert _verdict(_postfix(reply, MAIL, delayed=True)) == (ADDRESS, 4, "deferred")


@pytest.mark.parametrize(
    "reply", ["452 4.3.2 Too many open connections.", "452 4.3.2 Connection rate limit exceeded."]
)
def test_sendmails_connection_limits_at_mail_stay_a_policy_about_the_client(reply: str) -> None:
    # Round 63's conncontrol and ratecontrol, also under X.3.2 at MAIL: their words name the
    # limit (conncontrol's added with the round's rule).
    assert _verdict(_postfix(reply, MAIL)) == (ADDRESS, 4, "failed")
    assert classify_reply(452, "4.3.2", reply).status == 4


def test_rspamds_soft_reject_in_postfixs_warning_and_final_notice() -> None:
    reply = "451 4.7.1 Try again later"
    assert _verdict(_postfix(reply, DATA_STAGE, delayed=True)) == (ADDRESS, 4, "deferred")
    assert _verdict(_postfix(reply, DATA_STAGE)) == (ADDRESS, 4, "failed")


def test_the_milter_down_with_f_r_in_sendmails_notice_is_the_receivers_error() -> None:
    # Its 554 greeting, no command sent: Sendmail fails at once (EX_UNAVAILABLE, 5.5.0). In
    # Postfix's and Exim's notices the same words read otherwise (left: they are also
    # greet_pause's and a milter's connect-stage refusal, policies about the client).
    transcript = f"<<< {NOT_ACCEPTING}\n554 5.0.0 Service unavailable"
    raw = sendmail_final(ADDRESS, NOT_ACCEPTING, transcript, status="5.5.0")
    assert _verdict(raw) == (ADDRESS, 7, "failed")


def test_the_round_70_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        SENDMAIL_MILTERS_CASES,
        ("sendmail_milters_postfix", "sendmail_milters_exim", "sendmail_milters_sendmail"),
        cases=(8, 8, 8),
        rows=(12, 11, 11),
        delayed=(4, 3, 3),
        senders=24,
        split="unseen",
        statuses={3, 4, 7},
    )
