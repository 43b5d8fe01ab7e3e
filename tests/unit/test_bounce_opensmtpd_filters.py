"""A receiving OpenSMTPD's filter programs in other MTAs' notices (issue #16, round 69):
OpenSMTPD 6.8 with Debian's opensmtpd-filter-rspamd (against rspamd 3.4) and
opensmtpd-filter-senderscore, refusing and deferring as Postfix 3.7, Exim 4.96 and Sendmail
8.17 wrote it on loopback (``bench/bounce_accuracy/mtas/opensmtpd_filters_*.py``; rebuilt
here with the round's replies, domains changed), and the round's case file. Round 69 measured
them once; its one rule reads GTUBE named in a refusal (rspamd's "550 Gtube pattern") as a
spam refusal (4).
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import OPENSMTPD_FILTERS_CASES
from postline.bounce.classify import classify_reply
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    DATA_STAGE,
    exim_notice,
    postfix_kind,
    postfix_notice,
    sendmail_final,
)

ADDRESS = "ida.of@example.net"
GTUBE = "550 Gtube pattern"  # rspamd's GTUBE check, through filter-rspamd
SENDERSCORE = "550 your IP reputation is too low for this MX"  # filter-senderscore's block
RSPAMD_DOWN = "421 server internal error"  # filter-rspamd when rspamd cannot be reached


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def _postfix(reply: str, *, delayed: bool = False, stage: str | None = DATA_STAGE) -> str:
    status = "4.0.0" if reply.startswith("4") else "5.0.0"
    kind = postfix_kind(delayed=delayed)
    return postfix_notice(ADDRESS, reply, status=status, kind=kind, stage=stage)


def test_rspamds_gtube_refusal_in_postfixs_notice() -> None:
    # without the round's rule this reads 99 (no reason named)
    assert _verdict(_postfix(GTUBE)) == ("ida.of@example.net", 4, "failed")


def test_rspamds_gtube_refusal_in_exims_notice() -> None:
    raw = exim_notice(ADDRESS, GTUBE, after="end of data")
    assert _verdict(raw) == ("ida.of@example.net", 4, "failed")


def test_rspamds_gtube_refusal_in_sendmails_notice_under_its_own_5_2_0() -> None:
    session = f">>> DATA\n<<< {GTUBE}\n554 5.0.0 Service unavailable"
    raw = sendmail_final(ADDRESS, GTUBE, session, status="5.2.0")
    assert _verdict(raw) == ("ida.of@example.net", 4, "failed")


@pytest.mark.parametrize("reply", [GTUBE, "554 5.7.1 GTUBE test string found"])
def test_gtube_named_in_a_refusal_is_spam(reply: str) -> None:
    assert classify_reply(int(reply[:3]), "", reply).status == 4


def test_a_word_that_only_begins_like_gtube_is_not_spam() -> None:
    reply = "550 5.1.1 <gtubes@example.net>: Recipient address rejected: User unknown"
    assert classify_reply(550, "5.1.1", reply).status == 2


def test_senderscores_block_at_connect_and_at_rcpt() -> None:
    assert _verdict(_postfix(SENDERSCORE, stage=None)) == ("ida.of@example.net", 4, "failed")
    assert _verdict(_postfix(SENDERSCORE, stage=f"RCPT TO:<{ADDRESS}>")) == (
        "ida.of@example.net", 4, "failed")  # fmt: skip
    raw = exim_notice(ADDRESS, SENDERSCORE, after="initial connection")
    assert _verdict(raw) == ("ida.of@example.net", 4, "failed")


def test_rspamd_down_is_the_receivers_trouble_then_retries_exceeded() -> None:
    warning = _verdict(_postfix(RSPAMD_DOWN, delayed=True))
    assert warning == ("ida.of@example.net", 7, "deferred")
    assert _verdict(_postfix(RSPAMD_DOWN)) == ("ida.of@example.net", 3, "failed")


def test_opensmtpds_own_424_expansion_failure_in_a_warning_is_the_receivers_trouble() -> None:
    # a forward-only action whose local user has no ~/.forward (added after the rule)
    reply = "424 4.2.4 Mailing list expansion problem: <ida.of@example.net>"
    raw = postfix_notice(ADDRESS, reply, status="4.2.4", kind=postfix_kind(delayed=True),
                         stage=f"RCPT TO:<{ADDRESS}>")  # fmt: skip
    assert _verdict(raw) == ("ida.of@example.net", 7, "deferred")


def test_the_round_69_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        OPENSMTPD_FILTERS_CASES,
        ("opensmtpd_filters_postfix", "opensmtpd_filters_exim", "opensmtpd_filters_sendmail"),
        cases=(7, 7, 7),
        rows=(10, 10, 10),
        delayed=(3, 3, 3),
        senders=21,
        split="unseen",
        statuses={3, 4, 7},
    )
