"""ZMailer's notices (round 46): how its text part and its delivery-status part state each
recipient, and the case file.

The notices are written here as ZMailer 3.0.1 (built from its public repository's snapshot,
bench/bounce_accuracy/mtas/zmailer.py) wrote them on loopback, cut to what the classifier
reads (domains, dates and the postmaster's help text changed or trimmed): its text part begins
with the report's per-message fields, a ``Return-Path:`` among them (which had cut the notice
there, as if the returned message started), then each recipient under ``FAILED:`` with its
fields on lines of their own and the smtp agent's session under ``Diagnostic texts:`` in its
own arrows (``<<- RCPT To:<x>`` / ``->> 550 ...``); its delivery-status part writes
"Final Recipient" with a space and no Diagnostic-Code field (a format string with three
``%s`` and one argument, scheduler/msgerror.c), so its recipients are read from the text.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import zmailer
from bench.bounce_accuracy.mtas.cases import ZMAILER_CASES, load
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set

BROKEN_FIELD = "Diagnostic-Code:%sDiagnostic-Code:%s%s"


def _block(recipient: str, status: str, reply: str, texts: str) -> str:
    """One recipient under ``FAILED:`` as ZMailer's text part lists it."""
    return (
        "FAILED:\r\n"
        f"  Arrived Recipient:\r\n      rfc822;{recipient}\r\n"
        f"  Original Recipient:\r\n      rfc822;{recipient}\r\n"
        f"  Final Recipient:\r\n      RFC822;{recipient}\r\n"
        "  Action:\r\n      failed\r\n"
        f"  Status:\r\n      {status}\r\n"
        "  Remote-MTA:\r\n      X-IP-addr; [192.0.2.25] (192.0.2.25|25|192.0.2.9|53810)\r\n"
        "  Last-Attempt-Date:\r\n      Sun, 6 Dec 2026 16:03:07 +0000\r\n"
        "  X-ZTAID:\r\n      smtp[9772]\r\n"
        f"{reply}{BROKEN_FIELD}\r\n\r\nsmtp[9772]\r\n\r\n"
        "  Control data:\r\n"
        f"      smtp [192.0.2.25] {recipient} 65534\r\n"
        f"  Diagnostic texts:\r\n{texts}"
    )


def _zmailer(blocks: list[str], count: int = 1) -> bytes:
    text = "".join(blocks)
    return (
        "Return-Path: <>\r\n"
        "To:\tnews@example.org\r\n"
        "From:\tThe Post Office <postmaster@example.com>\r\n"
        "Sender:\tmailer-daemon@example.com\r\n"
        f"Subject: Returned mail: see the transcript [FAILED({count})]\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        '\tboundary="zz"\r\n\r\n'
        "This is MULTIPART/REPORT structured message as defined at RFC 1894.\r\n\r\n"
        "--zz\r\nContent-Type: text/plain\r\n\r\n"
        "This is a collection of reports about email delivery\r\n"
        "process concerning a message you originated.\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n"
        "Return-Path: <news@example.org>\r\n"
        "Arrival-Date: Sun, 6 Dec 2026 16:00:15 +0000\r\n"
        "Local-Spool-ID: S2311145AbmLFQAPOg2gG\r\n\r\n\r\n"
        f"{text}\r\n"
        "Following is a copy of MESSAGE/DELIVERY-STATUS format section below.\r\n"
        "It is copied here in case your email client is unable to show it to you.\r\n\r\n"
        "--zz\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n"
        "Arrival-Date: Sun, 6 Dec 2026 16:00:15 +0000\r\n\r\n"
        "Original Recipient: rfc822;x@example.net\r\n"
        "Final Recipient: RFC822;x@example.net\r\n"
        "Status: 5.1.1 (bad destination mailbox)\r\n\r\n"
        "--zz\r\nContent-Type: message/rfc822\r\n\r\n"
        "From: news@example.org\r\nTo: x@example.net\r\nSubject: Newsletter\r\n\r\nHello\r\n"
        "--zz--\r\n"
    ).encode()


def _session(recipient: str, reply: str, expired: bool = False) -> str:
    head = "      expired after 3 mins, problem was:\r\n     \r\n" if expired else ""
    return (
        f"{head}     <<- MAIL From:<news@example.org> BODY=8BITMIME SIZE=490\r\n"
        "     ->> 250 OK\r\n"
        f"     <<- RCPT To:<{recipient}>\r\n"
        f"     ->> {reply}\r\n\r\n"
    )


def _verdicts(raw: bytes) -> dict[str, tuple[int, str]]:
    _, verdicts = classify_mail(raw)
    return {v.recipient: (v.status, v.delivery) for v in verdicts}


OUTLOOK = (
    "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
    "[AM4PEPF00027A5F.eurprd04.prod.outlook.com]"
)


def test_a_refused_recipient_is_read_from_the_text_part_under_its_session_not_the_sender() -> None:
    """The text part is read past its own Return-Path field, and ZMailer's ``<<- RCPT To:``
    makes the reply one to RCPT (its earlier ``<<- MAIL From:`` line had made it a refused
    sender, 4)."""
    address = "quirin.ahl@example.net"
    zmailer_reply = (
        "smtp; 550 (5.5.0 Requested action not taken: mailbox unavailable [S2017062302].)"
    )
    raw = _zmailer(
        [
            _block(
                address,
                "5.1.1 (bad destination mailbox)",
                zmailer_reply,
                _session(address, OUTLOOK),
            )
        ]
    )
    assert _verdicts(raw) == {address: (2, "failed")}


def test_two_recipients_of_one_notice_each_with_its_own_reason() -> None:
    full, unknown = "dagny.ruud@example.net", "bodil.aas@example.net"

    def session(address: str, reply: str) -> str:
        return f"     <<- RCPT To:<{address}>\r\n     ->> {reply}\r\n"

    blocks = [
        _block(full, "5.2.3 (Some content related rejection, size ? text ?)",
               f"smtp; 552 (5.2.2 <{full}>... Mailbox full)",
               session(full, f"552 5.2.2 <{full}>... Mailbox full")),
        _block(unknown, "5.1.1 (bad destination mailbox)",
               f"smtp; 550 (5.1.1 <{unknown}>... User unknown)",
               session(unknown, f"550 5.1.1 <{unknown}>... User unknown")),
    ]  # fmt: skip
    assert _verdicts(_zmailer(blocks, count=2)) == {full: (5, "failed"), unknown: (2, "failed")}


def test_a_temporary_reply_until_the_expiry_is_retries_exceeded() -> None:
    address = "willem.dahl@example.net"
    reply = f"451 4.3.0 <{address}>: Temporary lookup failure"
    block = _block(address, "4.0.0", f"smtp; 451 (4.3.0 <{address}>: Temporary lookup failure)",
                   _session(address, reply, expired=True))  # fmt: skip
    assert _verdicts(_zmailer([block])) == {address: (3, "failed")}


def test_a_size_refusal_after_data_in_zmailers_session() -> None:
    address = "vera.holt@example.net"
    texts = (
        f"     <<- RCPT To:<{address}>\r\n     ->> 250 2.1.5 Ok\r\n"
        "     <<- DATA\r\n     ->> 354 End data with <CR><LF>.<CR><LF>\r\n"
        "     <<- .\r\n     ->> 552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    )
    reply = "smtp; 552 (5.3.4 Message size exceeds fixed maximum message size)"
    block = _block(address, "5.2.3 (Some content related rejection, size ? text ?)", reply, texts)
    assert _verdicts(_zmailer([block])) == {address: (8, "failed")}


def test_zmailers_expiry_and_connection_words() -> None:
    expired = classify_failure(
        451, "4.3.0", "expired after 3 mins, problem was: smtp; 451 4.3.0 Temporary lookup failure",
        action="failed",
    )  # fmt: skip
    assert (expired.status, expired.reason) == (3, "expired")
    # Its smtp agent's own "500" for a refused TCP connection: a connection that failed (7),
    # not a server's refusal at the greeting (4). The case file labels it 3 (the retries ran
    # out): since round 54 the parser reads ZMailer's own "500" as no reply (own_failures in
    # mail_formats.yaml), and the notice is 3 (tests/unit/test_bounce_left_misses.py).
    refused = classify_failure(
        500, "5.4.1",
        "smtp; 500 (connect to 192.0.2.25 [192.0.2.25|25|192.0.2.9|39170]: Connection refused)",
        command="CONN", action="failed",
    )  # fmt: skip
    assert refused.reason == "connection-failed"


def test_the_zmailer_cases_are_a_committed_set_of_their_own_from_a_recorded_commit() -> None:
    assert_committed_set(
        ZMAILER_CASES, ("zmailer",), cases=(15,), rows=(16,), senders=15, split="dev"
    )
    header = ZMAILER_CASES.read_text("utf-8")
    assert f"github.com/rzachariassen/zmailer at commit {zmailer.COMMIT}" in header
    cases = load("zmailer", ZMAILER_CASES)
    labels = {a: label.status for case in cases for a, label in case.failed.items()}
    assert len(labels) == 16
    by_case = {case.name: case for case in cases}
    assert [lb.status for lb in by_case["local-unknown-user"].failed.values()] == [2]
    assert [lb.status for lb in by_case["unknown-domain"].failed.values()] == [1]
    for name in ("remote-451-lifetime", "connection-refused-lifetime", "greeting-timeout-lifetime"):
        assert [lb.status for lb in by_case[name].failed.values()] == [3]


@pytest.mark.parametrize(
    "name", ["remote-550-5.7.1-blocklist", "remote-554-5.7.1-spam", "remote-relay-denied"]
)
def test_a_policy_refusal_is_4_though_zmailers_status_says_a_bad_mailbox(name: str) -> None:
    case = next(c for c in load("zmailer", ZMAILER_CASES) if c.name == name)
    assert [label.status for label in case.failed.values()] == [4]
    reply = next(iter(case.scripts.values())).text.format(address="x@example.net")
    found = classify_failure(int(reply[:3]), reply[4:9], reply, action="failed")
    assert found.status == 4
