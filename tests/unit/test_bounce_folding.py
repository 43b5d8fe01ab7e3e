"""Folded header lines that lost their leading white space (RFC 5322 section 2.2.3)."""

from __future__ import annotations

from postline.bounce.mail import Kind
from postline.bounce.mail.folding import refold
from postline.bounce.mail.mime import read_message
from postline.bounce.verdicts import classify_mail

# A Sendmail notice as a copy stores it: three folded lines lost their white space, so the
# header block seems to end at the first of them.
_DAMAGED = (
    "Received: by 10.0.0.1 with SMTP id\n"
    "g3mr43440303qas.98.1390370580974;\n"
    "        Tue, 21 Jan 2014 22:03:00 -0800 (PST)\n"
    "Return-Path: <>\n"
    "Received: from localhost (localhost)\n"
    "\tby mx.example.net (8.14.4/8.14.4) id\n"
    "s0M634oJ050259;\n"
    "\tWed, 22 Jan 2014 06:03:04 GMT\n"
    "Date: Wed, 22 Jan 2014 06:03:04 GMT\n"
    "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\n"
    "To: <bounces@example.test>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status;\n"
    'boundary="b"\n'
    "Subject: Returned mail: see transcript for details\n"
    "\n"
    "--b\n\n"
    "   ----- The following addresses had permanent fatal errors -----\n"
    "<gone@example.org>\n"
    "    (reason: 550 5.1.1 User unknown)\n\n"
    "--b\nContent-Type: message/delivery-status\n\n"
    "Reporting-MTA: dns; mx.example.net\n\n"
    "Final-Recipient: RFC822; gone@example.org\n"
    "Action: failed\nStatus: 5.1.1\n"
    "Diagnostic-Code: SMTP; 550 5.1.1 <gone@example.org>... User unknown\n\n"
    "--b--\n"
)


def test_a_fold_that_lost_its_white_space_is_read_as_a_continuation() -> None:
    message = read_message(_DAMAGED.encode())
    assert message["From"] == "Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>"
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("boundary") == "b"
    report, verdicts = classify_mail(_DAMAGED.encode())
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("gone@example.org", 2, "failed")
    ]


def test_a_body_that_starts_without_an_empty_line_stays_the_body() -> None:
    # As Python's email package reads it: the block ends at the first line that is no
    # field, and nothing after it names a message's own field.
    raw = b"From: a@example.org\nSubject: Hi\nHello there,\nNote: see below\n\nBye\n"
    assert refold(raw) is None
    assert read_message(raw).get_payload().startswith("Hello there,")


def test_a_notice_without_headers_is_left_as_it_is() -> None:
    text = b"[https://example.org/logo.png]\nYour message to u@example.org couldn't be delivered.\n"
    assert refold(text) is None
    mbox = b"From MAILER-DAEMON Thu Mar  7 12:56:28 2024\n>From a@example.org\nTo: b@example.org\n"
    assert refold(mbox) is None


def test_well_formed_headers_are_not_touched() -> None:
    raw = b"From: a@example.org\nSubject: folded\n over two lines\nTo: b@example.org\n\nHi\n"
    assert refold(raw) is None
