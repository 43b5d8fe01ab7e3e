"""MIMEDefang run for real as a milter behind a receiving Postfix, and rspamd's own
greylisting with a private Redis (issue #16, round 57): Debian 12's packages run on loopback
(``bench/bounce_accuracy/mtas/mimedefang_postfix.py``, ``greylist_postfix.py`` and their Exim
and Sendmail siblings), the notices Postfix wrote of their answers (trimmed, domains and dates
changed), and the round's case file.

Round 57 measured MIMEDefang's set once (11/15): its four misses were the filter's
``action_tempfail`` with words saying the message could not be scanned now ("451 4.3.0 message
could not be scanned at this time, please try again later"): the three delay warnings read 3
(an expiry, from the 4.3.0 and no words) and Postfix's final notice 99 (on hold). Its rule:
transient-error's words for a filter whose scanning failed ("could not be scanned" at this
time; MIMEDefang's example filter's "Problem running virus-scanner"), which virus-detected's
"virus" no longer overrules: the receiving server's own trouble, 7 while retried, the expiry's
3 once the retries ran out. The tests marked so fail without it; the others hold what the
classifier reads today (the refusal, MIMEDefang's failure with its multiplexor down, rspamd's
greylisting).
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import MIMEDEFANG_CASES, load
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import DATA_STAGE, postfix_kind, postfix_notice

RECIPIENT = "berit.moln@example.net"
SCAN_TEMPFAIL = "451 4.3.0 message could not be scanned at this time, please try again later"


def _postfix(reply: str, *, delayed: bool = False) -> str:
    return postfix_notice(
        RECIPIENT,
        reply,
        status=reply.split()[1],
        kind=postfix_kind(delayed=delayed),
        stage=DATA_STAGE,
    )


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def test_postfixs_warning_of_a_filter_that_could_not_scan_is_the_servers_error() -> None:
    # read 3 (expired: a 4.3.0 and no words) before round 57
    assert _verdict(_postfix(SCAN_TEMPFAIL, delayed=True)) == (RECIPIENT, 7, "deferred")


def test_postfixs_final_notice_of_the_same_is_an_expiry() -> None:
    # read 99 (on hold) before round 57
    assert _verdict(_postfix(SCAN_TEMPFAIL)) == (RECIPIENT, 3, "failed")


@pytest.mark.parametrize(
    ("text", "action", "status"),
    [
        # round 57's rule: a filter that could not scan, and MIMEDefang's example filter's words
        (SCAN_TEMPFAIL, "delayed", 7),
        ("451 4.3.0 Problem running virus-scanner", "delayed", 7),
        # counter-examples: a message refused for what it carries stays a refusal
        ("554 5.7.1 message could not be scanned: encrypted archive", "failed", 4),
        ("554 5.7.1 Virus found in message", "failed", 4),
        ("554 5.7.1 message contains a prohibited attachment", "failed", 4),
    ],
)
def test_scanning_failures_against_refusals(text: str, action: str, status: int) -> None:
    code = int(text[:3])
    found = classify_failure(code, text.split()[1], text, action=action)
    assert found.status == status


@pytest.mark.parametrize(
    ("reply", "delayed", "status", "delivery"),
    [
        # MIMEDefang's action_bounce with the filter's text
        ("554 5.7.1 message contains a prohibited attachment", False, 4, "failed"),
        # mimedefang with its multiplexor down: Postfix's reply to the milter's tempfail
        ("451 4.7.1 Service unavailable - try again later", True, 7, "deferred"),
        ("451 4.7.1 Service unavailable - try again later", False, 3, "failed"),
        # rspamd's greylist module with its records in Redis
        ("451 4.7.1 Try again later", True, 4, "deferred"),
        ("451 4.7.1 Try again later", False, 4, "failed"),
    ],
)
def test_the_other_answers_in_postfixs_notices(
    reply: str, delayed: bool, status: int, delivery: str
) -> None:
    assert _verdict(_postfix(reply, delayed=delayed)) == (RECIPIENT, status, delivery)


MTA_NAMES = (
    "mimedefang_postfix", "mimedefang_exim", "mimedefang_sendmail",
    "greylist_postfix", "greylist_exim", "greylist_sendmail",
)  # fmt: skip


def test_the_round_is_registered() -> None:
    assert_committed_set(
        MIMEDEFANG_CASES,
        MTA_NAMES,
        cases=(3, 3, 3, 1, 1, 1),
        rows=(5, 5, 5, 2, 2, 2),
        senders=12,
    )


def test_the_cases_labels_follow_the_rounds_decisions() -> None:
    expected = {
        "mimedefang-bounce": (None, (4, "failed")),
        "mimedefang-tempfail": ((7, "deferred"), (3, "failed")),
        "mimedefang-multiplexor-down": ((7, "deferred"), (3, "failed")),
        "rspamd-greylist": ((4, "deferred"), (4, "failed")),
    }
    for mta in MTA_NAMES:
        for case in load(mta, MIMEDEFANG_CASES):
            (address,) = case.recipients
            delayed, failed = expected[case.name]
            if delayed is None:
                assert not case.delayed, case.name
            else:
                assert (case.delayed[address].status, case.delayed[address].delivery) == delayed
            assert (case.failed[address].status, case.failed[address].delivery) == failed
