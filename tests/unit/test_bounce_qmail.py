"""qmail's notices (issue #16, round 42): notqmail's qmail-send, as it wrote them on loopback in
round 42 (domains and dates changed), and the case file that labels them. Each test names the
behaviour it holds: a forward's failure reported at the address sent to, qmail-local's own
trouble with a maildir read as its failure (an expiry once qmail gave up), and a program's
refusal of the sender.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import cases, qmail
from bench.bounce_accuracy.mtas.rows import STATUSES
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set


def _qmail(failures: str, returned: str) -> bytes:
    """qmail-send's failure notice: its plain-text template, each address in <> followed by
    qmail-remote's or qmail-local's words, then the returned message."""
    return (
        "Return-Path: <>\n"
        "Date: 6 Dec 2026 15:27:27 -0000\n"
        "From: MAILER-DAEMON@mx.example.net\n"
        "To: news@example.test\n"
        "Subject: failure notice\n\n"
        "Hi. This is the qmail-send program at mx.example.net.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        f"{failures}\n"
        "--- Below this line is a copy of the message.\n\n"
        f"{returned}"
        "From: Newsletter <news@example.test>\n"
        "Subject: Newsletter 6\n\n"
        "Hello,\n"
    ).encode()


def _verdicts(mail: bytes) -> list[tuple[str, int, str]]:
    _, verdicts = classify_mail(mail)
    return [(v.recipient, v.status, v.delivery) for v in verdicts]


FORWARDED = (
    "Return-Path: <news@example.test>\n"
    "Received: (qmail 28007 invoked by alias); 6 Dec 2026 15:27:27 -0000\n"
    "Delivered-To: vera.linde@example.net\n"
    "Received: (qmail 27987 invoked from network); 6 Dec 2026 15:27:27 -0000\n"
    "To: vera.linde@example.net\n"
)
REFUSED = (
    "<vera.l@example.org>:\n"
    "192.0.2.7 does not like recipient.\n"
    "Remote host said: 550 5.1.1 <vera.l@example.org>: Recipient address rejected: User "
    "unknown in local recipient table\n"
    "Giving up on 192.0.2.7.\n"
)


def test_a_forwards_failure_is_reported_at_the_address_sent_to() -> None:
    # qmail-local forwarded vera.linde@ (its Delivered-To line, the returned To) to vera.l@,
    # which the remote refused: the address sent to takes the target's reason (2).
    assert _verdicts(_qmail(REFUSED, FORWARDED)) == [("vera.linde@example.net", 2, "failed")]
    _, verdicts = classify_mail(_qmail(REFUSED, FORWARDED))
    assert verdicts[0].final_recipient == "vera.l@example.org"


def test_a_virtual_domains_delivered_to_line_counts_by_the_address_it_ends_with() -> None:
    virtual = FORWARDED.replace("Delivered-To: vera.linde@", "Delivered-To: joe-vera.linde@")
    assert _verdicts(_qmail(REFUSED, virtual)) == [("vera.linde@example.net", 2, "failed")]


@pytest.mark.parametrize(
    "returned",
    [
        # the failed address is the one the returned message was sent to: no forwarding
        FORWARDED.replace("\nTo: vera.linde@example.net", "\nTo: vera.l@example.org"),
        # a Delivered-To line that names no address of the returned To
        FORWARDED.replace("\nTo: vera.linde@example.net", "\nTo: list@example.net"),
        # two Delivered-To addresses: which one led where is not read
        FORWARDED.replace("Delivered-To:", "Delivered-To: vera.l2@example.net\nDelivered-To:"),
    ],
)
def test_no_forward_is_read_without_one_delivered_to_line_the_headers_name(returned: str) -> None:
    assert _verdicts(_qmail(REFUSED, returned)) == [("vera.l@example.org", 2, "failed")]


def test_qmail_locals_maildir_trouble_after_the_lifetime_is_an_expiry() -> None:
    # "(#4.2.1)" is qmail-local's tag, not a refusal (X.2.1 is blocked's code); qmail retried
    # it until its queue lifetime: retries exceeded (3).
    failure = (
        "<tilde.holm@example.net>:\n"
        "Unable to chdir to maildir. (#4.2.1)\n"
        "I'm not going to try again; this message has been in the queue too long.\n"
    )
    returned = "Return-Path: <news@example.test>\nTo: tilde.holm@example.net\n"
    assert _verdicts(_qmail(failure, returned)) == [("tilde.holm@example.net", 3, "failed")]


def test_qmail_locals_maildir_trouble_while_retried_is_the_local_deliverys_failure() -> None:
    found = classify_failure(0, "4.2.1", "Unable to chdir to maildir. (#4.2.1)", action="delayed")
    assert (found.status, found.reason) == (7, "mailer-error")


def test_a_program_refusing_the_sender_is_a_receipt_rejection() -> None:
    failure = "<ruth.amsel@example.net>:\nSorry, I do not accept mail from this sender.\n"
    returned = "Return-Path: <news@example.test>\nTo: ruth.amsel@example.net\n"
    assert _verdicts(_qmail(failure, returned)) == [("ruth.amsel@example.net", 4, "failed")]


def test_the_case_file_records_its_source_and_labels_every_row() -> None:
    assert qmail.COMMIT in cases.QMAIL_CASES.read_text("utf-8")
    assert "notqmail/notqmail" in cases.QMAIL_CASES.read_text("utf-8")
    assert_committed_set(
        cases.QMAIL_CASES,
        ("qmail",),
        cases=(29,),
        rows=(30,),
        delayed=(0,),  # qmail sends no delay warnings
        senders=29,  # one a case
        split="dev",
        statuses=STATUSES,  # every row a failure: a status of the table, so "failed"
    )
    built = cases.load("qmail", cases.QMAIL_CASES)
    assert all(case.sender.startswith("bulletin-qm-") for case in built)
