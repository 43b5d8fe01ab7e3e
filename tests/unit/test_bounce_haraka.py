"""Haraka's failure notices (round 33): its retries that ran out, however its report words
them.

The notices are written here as Haraka 3.3.4's outbound wrote them on loopback (its
``outbound.bounce_message`` template and its delivery-status part, round 33's harness), cut to
their text part and report: Haraka reports a connection it could not make to any mail server
of the domain under X.1.2 ("Tried all MXs"), and turns the class of a temporary reply's status
to 5 when its retries run out, while its Diagnostic-Code keeps the 4xx reply.
"""

from __future__ import annotations

import pytest

from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail

EXPIRED = 3


def _haraka(recipient: str, reason: str, fields: str) -> bytes:
    """A Haraka notice to one recipient: its template's text and its report's ``fields``."""
    return (
        "From: MAILER-DAEMON@mx.sorb.test\r\n"
        "To: <bulletin-hk-19@sender.test>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Subject: failure notice\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        '    boundary="bb"\r\n\r\n'
        "This is a MIME-encapsulated message.\r\n\r\n"
        "--bb\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "Hi. This is the Haraka Mailer program at mx.sorb.test.\r\n"
        "I'm afraid I wasn't able to deliver your message\r\n"
        '    "Newsletter 19"\r\n'
        "to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"Intended Recipients: <{recipient}>\r\n"
        f"Failure Reason: Error: {reason}\r\n\r\n"
        "--bb\r\nContent-type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns;mx.sorb.test\r\n"
        "Arrival-Date: Sun, 06 Dec 2026 12:18:39 +0000\r\n\r\n"
        f"Final-Recipient: rfc822;{recipient}\r\nAction: failed\r\n{fields}\r\n"
        "--bb\r\nContent-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        "From: Newsletter <bulletin-hk-19@sender.test>\r\n"
        f"To: {recipient}\r\nSubject: Newsletter 19\r\n\r\n"
        "--bb--\r\n"
    ).encode()


def _status(raw: bytes) -> tuple[int, str]:
    _, verdicts = classify_mail(raw)
    assert len(verdicts) == 1
    return verdicts[0].status, verdicts[0].delivery


@pytest.mark.parametrize("domain", ["medlar.test", "tamarack.test"])
def test_no_mail_server_reached_until_harakas_retries_ran_out_is_a_resend_timeout(
    domain: str,
) -> None:
    # A refused connection (medlar.test) and a server that never greets (tamarack.test),
    # at every try: Haraka's X.1.2 is no unknown domain, its words say it stopped retrying.
    raw = _haraka(
        f"tor.lunde@{domain}",
        "Too many failures (Tried all MXs)",
        f"Status: 5.1.2 (550 Tried all MXs {domain})\r\n",
    )
    assert _status(raw) == (EXPIRED, "failed")


def test_a_domain_haraka_found_no_mail_server_for_is_still_an_unknown_host() -> None:
    # Counter-example: Haraka's own words for a domain that does not resolve.
    raw = _haraka(
        "siri.hov@olive-nx.test",
        "Nowhere to deliver mail to for domain: olive-nx.test",
        "Status: 5.1.2 (550 Nowhere to deliver mail to for domain: olive-nx.test)\r\n",
    )
    assert _status(raw) == (1, "failed")


@pytest.mark.parametrize(
    "reply",
    [
        "451 4.3.0 <jorunn.tveit@mulberry.test>: Temporary lookup failure",
        "451 4.3.0 <jorunn.tveit@mulberry.test> Temporary internal error",
    ],
)
def test_a_servers_own_temporary_trouble_until_harakas_retries_ran_out_is_a_resend_timeout(
    reply: str,
) -> None:
    # Haraka's status says 5.3.0; the reply it quotes is the 451 4.3.0 it got at every try.
    raw = _haraka(
        "jorunn.tveit@mulberry.test",
        "Too many failures (Some recipients temp failed: <jorunn.tveit@mulberry.test>)",
        f"Status: 5.3.0\r\nRemote-MTA: 127.0.0.1\r\nDiagnostic-Code: smtp;{reply} \r\n",
    )
    assert _status(raw) == (EXPIRED, "failed")


def test_a_temporary_reply_that_names_a_full_mailbox_keeps_it_after_the_retries() -> None:
    # Counter-example: a reason of the recipient's is kept (452 4.2.2, Status 5.2.2).
    raw = _haraka(
        "ivar.sel@mulberry.test",
        "Too many failures (Some recipients temp failed: <ivar.sel@mulberry.test>)",
        "Status: 5.2.2\r\nRemote-MTA: 127.0.0.1\r\n"
        "Diagnostic-Code: smtp;452 4.2.2 <ivar.sel@mulberry.test>: Mailbox is full, "
        "try again later \r\n",
    )
    assert _status(raw) == (5, "failed")


def test_a_status_whose_class_was_not_the_only_change_is_no_temporary_reply() -> None:
    # Counter-examples: a permanent reply's own 5.3.0, and a 4xx reply whose own status names
    # another subject than the report's, keep the receiving server's error (7).
    permanent = classify_failure(
        550, "5.3.0", "550 5.3.0 Temporary lookup failure", command="RCPT", action="failed"
    )
    other = classify_failure(
        451, "5.3.0", "451 4.7.0 Temporary internal error", command="RCPT", action="failed"
    )
    assert (permanent.status, other.status) == (7, 7)
