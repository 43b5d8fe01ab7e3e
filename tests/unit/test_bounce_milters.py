"""Content filters run for real as milters behind a receiving Postfix (issue #16, round 55):
clamav-milter with clamd, spamass-milter with SpamAssassin's spamd and rspamd's proxy worker
in milter mode, Debian 12's packages run on loopback (``bench/bounce_accuracy/mtas/
milters_postfix.py``, ``milters_exim.py``, ``milters_sendmail.py``), and the notices Exim
wrote of their answers (trimmed, domains and dates changed), and the round's case file.

Round 55 measured the set once (17/18): its one miss was Exim's final notice of
clamav-milter's temporary failure with clamd down, "451 4.7.1 Service unavailable - try again
later: retry timeout exceeded", read 4 by the X.7.1 code (blocked's) once Exim's own words of
an expiry had cancelled transient-error's veto; Postfix's notice of the same after its queue
lifetime reads 3. Its rule: system-error's words ("service unavailable"), which no expiry
cancels, veto blocked's X.7.1 code as transient-error's do (the first two tests fail without
it). rspamd's soft reject, "451 4.7.1 Try again later" (its greylisting's words), names no
server trouble and stays a policy deferral (4) in the warning and the final notice, Exim's
expiry words or not. The other tests hold what the classifier reads today.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import MILTER_CASES, load
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import exim_notice

RECIPIENT = "hedda.jarl@example.net"
TEMPFAIL = "451 4.7.1 Service unavailable - try again later"


def _exim(reply: str, *, delayed: bool = False, expired: bool = False) -> str:
    # Exim folds its expiry words onto their own line after the reply
    folded = f"{reply}:\n    retry timeout exceeded" if expired else None
    return exim_notice(
        RECIPIENT, reply, after="pipelined end of data", delayed=delayed, expired=expired,
        folded=folded, host="mx.example.net",
    )  # fmt: skip


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def test_exims_final_notice_of_a_milter_tempfail_is_an_expiry() -> None:
    # clamav-milter with clamd down (OnFail Defer): read 4 (X.7.1, blocked) before round 55
    assert _verdict(_exim(TEMPFAIL, expired=True)) == (RECIPIENT, 3, "failed")


def test_a_temporary_x_7_1_reply_with_exims_expiry_words_is_an_expiry() -> None:
    text = f"{TEMPFAIL}: retry timeout exceeded"
    found = classify_failure(451, "4.7.1", text, action="failed")
    assert (found.status, found.reason) == (3, "expired")


def test_exims_delay_warning_of_the_same_tempfail_stays_the_servers_error() -> None:
    assert _verdict(_exim(TEMPFAIL, delayed=True)) == (RECIPIENT, 7, "deferred")


@pytest.mark.parametrize(
    ("text", "status"),
    [
        # Postfix's final notice of the same after its queue lifetime (no expiry words)
        (TEMPFAIL, 3),
        # a blocklist's own words keep the refusal, expiry or not
        ("451 4.7.1 Client host blocked using zen.spamhaus.org: retry timeout exceeded", 4),
        # rspamd's soft reject (its greylisting's words): a policy deferral, expiry or not
        ("451 4.7.1 Try again later: retry timeout exceeded", 4),
        ("451 4.7.1 Try again later", 4),
    ],
)
def test_x_7_1_finals_against_the_expiry_words(text: str, status: int) -> None:
    assert classify_failure(451, "4.7.1", text, action="failed").status == status


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.7.1 Command rejected",  # clamav-milter's default: Postfix's own words
        "550 5.7.1 Virus found in your message: Local.Test.EICAR.UNOFFICIAL",  # RejectMsg %v
        "550 5.7.1 Blocked by SpamAssassin",  # spamass-milter -r
        "554 5.7.1 Gtube pattern",  # rspamd's answer to GTUBE
    ],
)
def test_the_milters_refusals_in_exims_notices_are_refusals(reply: str) -> None:
    assert _verdict(_exim(reply)) == (RECIPIENT, 4, "failed")


def test_rspamds_soft_reject_in_exims_notices_is_a_policy_deferral() -> None:
    reply = "451 4.7.1 Try again later"
    assert _verdict(_exim(reply, delayed=True)) == (RECIPIENT, 4, "deferred")
    assert _verdict(_exim(reply, expired=True)) == (RECIPIENT, 4, "failed")


def test_the_round_is_registered() -> None:
    assert_committed_set(
        MILTER_CASES,
        ("milters_postfix", "milters_exim", "milters_sendmail"),
        cases=(6, 6, 6),
        rows=(8, 8, 8),
        senders=18,
    )


def test_the_cases_labels_follow_the_rounds_decisions() -> None:
    for mta in ("milters_postfix", "milters_exim", "milters_sendmail"):
        cases = {case.name: case for case in load(mta, MILTER_CASES)}
        assert set(cases) == {
            "clamav-virus-default", "clamav-virus-reject-msg", "clamav-clamd-down",
            "spamass-gtube", "rspamd-gtube", "rspamd-soft-reject",
        }  # fmt: skip
        for name, case in cases.items():
            assert len(case.recipients) == 1
            (address,) = case.recipients
            assert address.startswith(tuple(case.failed)), name
            if name == "rspamd-soft-reject":
                for labels, delivery in ((case.delayed, "deferred"), (case.failed, "failed")):
                    assert (labels[address].status, labels[address].delivery) == (4, delivery)
            elif name == "clamav-clamd-down":
                assert (case.delayed[address].status, case.delayed[address].delivery) == (
                    7, "deferred",
                )  # fmt: skip
                assert (case.failed[address].status, case.failed[address].delivery) == (
                    3, "failed",
                )  # fmt: skip
            else:
                assert not case.delayed
                assert (case.failed[address].status, case.failed[address].delivery) == (
                    4, "failed",
                )  # fmt: skip
                assert case.body, name  # the test string the filter detects
