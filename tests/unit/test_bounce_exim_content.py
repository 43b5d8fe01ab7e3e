"""A receiving Exim's content scanning in other MTAs' notices (issue #16, round 68): Exim 4.96
(exim4-daemon-heavy) refusing and deferring after DATA by spamd's and clamd's verdicts, its
MIME ACL, a regex and sa-exim, as Postfix 3.7, Exim 4.96 and Sendmail 8.17 wrote them on
loopback (``bench/bounce_accuracy/mtas/exim_content_*.py``; trimmed, domains and dates
changed), and the round's case file. Round 68 measured them once; its two rules read the MIME
ACL's "Serious MIME defect detected (Broken BASE64 encoding detected)" as a content refusal
and SpamAssassin's "score=… required=…" in sa-exim's teergrube replies as a spam policy's
deferral (4), for now and after the queue lifetime.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import EXIM_CONTENT_CASES, load, message
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

ADDRESS = "una.ef@example.net"
# The receiving Exim's refusals after DATA (its specification's, Debian's exim4-config's and
# the exiscan-era examples' words, sa-exim's stock words, one text of ours): each 4.
REFUSALS = [
    "550 This message was classified as SPAM",
    "550 Classified as spam (score 1002.3)",
    "550 Your message looks like unsolicited bulk mail and was not accepted here",
    "550 This message contains malware (Local.Test.EICAR.UNOFFICIAL)",
    "550 This message was detected as possible malware (Local.Test.EICAR.UNOFFICIAL).",
    "550 Blacklisted file extension detected",
    "550 Serious MIME defect detected (Broken BASE64 encoding detected)",
    "550 contains blacklisted regex (URGENT BUSINESS PROPOSAL)",
]
TEERGRUBE = "451-score=999.0 required=5.0 trigger=25.0 451-NULL 451-NULL 451 Please try again later"
# Exim's words when the spam or malware condition cannot reach its scanner (a bare defer)
SCANNER_DOWN = "451 Temporary local problem - please try later"


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def _postfix(reply: str, *, delayed: bool = False) -> str:
    status = "4.0.0" if reply.startswith("4") else "5.0.0"
    kind = postfix_kind(delayed=delayed)
    return postfix_notice(ADDRESS, reply, status=status, kind=kind, stage=DATA_STAGE)


@pytest.mark.parametrize("reply", REFUSALS)
def test_the_receiving_exims_content_refusals_in_postfixs_notices(reply: str) -> None:
    assert _verdict(_postfix(reply)) == ("una.ef@example.net", 4, "failed")


@pytest.mark.parametrize("reply", REFUSALS)
def test_the_receiving_exims_content_refusals_in_exims_notices(reply: str) -> None:
    raw = exim_notice(ADDRESS, reply, after="end of data")
    assert _verdict(raw) == ("una.ef@example.net", 4, "failed")


@pytest.mark.parametrize(
    "reply",
    [
        "550 Serious MIME defect detected (Broken BASE64 encoding detected)",
        "550 Serious MIME defect detected (Broken Quoted-Printable encoding detected)",
        "554 Broken BASE64 encoding detected",
    ],
)
def test_exims_mime_anomaly_words_are_a_content_refusal(reply: str) -> None:
    # without the round's rule these read 99 (no reason named)
    assert classify_reply(int(reply[:3]), "", reply).status == 4


def test_sa_exims_teergrube_in_postfixs_warning_and_final_notice() -> None:
    assert _verdict(_postfix(TEERGRUBE, delayed=True)) == ("una.ef@example.net", 4, "deferred")
    assert _verdict(_postfix(TEERGRUBE)) == ("una.ef@example.net", 4, "failed")


def test_sa_exims_teergrube_in_exims_warning_and_final_notice() -> None:
    reply = "451 score=999.0 required=5.0 trigger=25.0 NULL NULL Please try again later"
    warning = exim_notice(ADDRESS, reply, after="end of data", delayed=True)
    assert _verdict(warning) == ("una.ef@example.net", 4, "deferred")
    final = exim_notice(ADDRESS, reply, after="end of data", expired=True)
    assert _verdict(final) == ("una.ef@example.net", 4, "failed")


def test_sa_exims_teergrube_in_sendmails_final_notice_under_its_own_4_4_7() -> None:
    # Sendmail keeps the reply's first line in its reason and Diagnostic-Code
    first = "451-score=999.0 required=5.0 trigger=25.0"
    session = (
        f">>> DATA\n<<< {first}\n<<< 451-NULL\n<<< 451-NULL\n<<< 451 Please try again later\n"
        f"<{ADDRESS}>... Deferred: {first}\nMessage could not be delivered for 3 minutes\n"
        "Message will be deleted from queue"
    )
    raw = sendmail_final(ADDRESS, first, session, status="4.4.7", actual=True)
    assert _verdict(raw) == ("una.ef@example.net", 4, "failed")


def test_a_scanner_that_is_down_is_the_receivers_trouble_then_retries_exceeded() -> None:
    assert _verdict(_postfix(SCANNER_DOWN, delayed=True)) == ("una.ef@example.net", 7,
                                                             "deferred")  # fmt: skip
    assert _verdict(_postfix(SCANNER_DOWN)) == ("una.ef@example.net", 3, "failed")


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.1.1 <una.ef@example.net>: Recipient address rejected: score=3 users",
        "452 4.2.2 Mailbox full, required=5.0 MB free",
    ],
)
def test_a_score_or_a_requirement_alone_is_no_spam_verdict(reply: str) -> None:
    assert classify_reply(int(reply[:3]), reply.split()[1], reply).status != 4


def test_the_round_68_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        EXIM_CONTENT_CASES,
        ("exim_content_postfix", "exim_content_exim", "exim_content_sendmail"),
        cases=(13, 13, 13),
        rows=(17, 17, 17),
        delayed=(4, 4, 4),
        senders=39,
    )


def test_a_case_with_its_own_content_type_sends_a_multipart_message() -> None:
    attachment = next(c for c in load("exim_content_postfix", EXIM_CONTENT_CASES)
                      if c.name == "content-attachment")  # fmt: skip
    raw = message(attachment, 8).decode()
    head = raw.split("\r\n\r\n", 1)[0]
    assert head.count("Content-Type:") == 1
    assert 'Content-Type: multipart/mixed; boundary="r68-part"' in head
    assert 'filename="invoice.exe"' in raw
    plain = next(c for c in load("exim_content_postfix", EXIM_CONTENT_CASES)
                 if c.name == "content-regex")  # fmt: skip
    assert "Content-Type: text/plain; charset=us-ascii" in message(plain, 10).decode()
