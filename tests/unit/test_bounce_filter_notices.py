"""The notices filters write themselves (round 35): amavisd-new's own delivery status
notifications, and the rejection a mailbox's Sieve filter sends (RFC 5429's ``reject``, in the
form of a message disposition notification), as amavisd-new 2.13.0 and Dovecot 2.3.19.1's
Pigeonhole wrote them here (``bench/bounce_accuracy/mtas/amavis.py`` and ``sieve.py``),
trimmed; and the disposition notifications that are no refusal.
"""

from __future__ import annotations

import pytest

from postline.bounce.mail import Kind
from postline.bounce.verdicts import classify_mail


def _sieve_reject(recipient: str, reason: str, disposition: str, delivered_to: bool) -> bytes:
    """Pigeonhole's rejection notice, as Dovecot 2.3.19.1 sent it for a Sieve ``reject``."""
    trail = f"Delivered-To: {recipient}\r\n" if delivered_to else ""
    return (
        "Return-Path: <>\r\n"
        "Message-ID: <dovecot-1796559778-885009-0@vm>\r\n"
        "Date: Sun, 06 Dec 2026 12:22:58 +0000\r\n"
        "From: Postmaster <postmaster@aspen.test>\r\n"
        "To: <bulletin-sv-01@sender.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=disposition-notification;\r\n"
        '\tboundary="23243/mx.aspen.test"\r\n'
        "Subject: Rejected: Newsletter 1\r\n"
        "Auto-Submitted: auto-replied (rejected)\r\n"
        "Precedence: bulk\r\n\r\n"
        "This is a MIME-encapsulated message\r\n\r\n"
        "--23243/mx.aspen.test\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Disposition: inline\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"Your message to <{recipient}> was automatically rejected:\r\n"
        f"{reason}\r\n"
        "--23243/mx.aspen.test\r\n"
        "Content-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: mx.aspen.test; Dovecot Mail Delivery Agent\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Original-Message-ID: <179655977881.23202.8960882196079597776@sender.test>\r\n"
        f"Disposition: {disposition}\r\n\r\n"
        "--23243/mx.aspen.test\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
        "Return-Path: <bulletin-sv-01@sender.test>\r\n"
        f"{trail}"
        "From: Newsletter <bulletin-sv-01@sender.test>\r\n"
        "To: ola.brekke@aspen.test, mira.solberg@aspen.test\r\n"
        "Subject: Newsletter 1\r\n"
        "Message-ID: <179655977881.23202.8960882196079597776@sender.test>\r\n\r\n"
        "Hello,\r\n\r\n"
        "--23243/mx.aspen.test--\r\n"
    ).encode()


REJECTED = "automatic-action/MDN-sent-automatically; deleted"


@pytest.mark.parametrize("delivered_to", [True, False])
def test_a_sieve_reject_is_the_recipients_refusal(delivered_to: bool) -> None:
    # Before round 35: no refusal (the generated notices: 99, no rule knowing "was
    # automatically rejected", or no bounce at all when the message went to two).
    mail = _sieve_reject(
        "mira.solberg@aspen.test", "Messages from this sender are not accepted.", REJECTED,
        delivered_to,
    )  # fmt: skip
    report, verdicts = classify_mail(mail)
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("mira.solberg@aspen.test", 4, "failed")
    ]
    assert "was automatically rejected" in verdicts[0].reason


def test_a_sieve_reject_is_a_refusal_whatever_the_users_words() -> None:
    # The reason is the user's own text; the disposition says what happened.
    mail = _sieve_reject(
        "jonas.eklund@aspen.test", "I did not subscribe to this list. Please take me off it.",
        "automatic-action/MDN-sent-automatically;deleted", True,
    )  # fmt: skip
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.status) for v in verdicts] == [("jonas.eklund@aspen.test", 4)]


@pytest.mark.parametrize(
    "disposition",
    [
        "manual-action/MDN-sent-manually; displayed",  # a read receipt
        "automatic-action/MDN-sent-automatically; displayed",
        "automatic-action/MDN-sent-automatically; processed",
        "manual-action/MDN-sent-manually; deleted",  # a person deleted it: no refusal
    ],
)
def test_a_disposition_notification_that_states_no_refusal_is_no_bounce(
    disposition: str,
) -> None:
    # A receipt in the same form, from the person's mail program.
    mail = (
        _sieve_reject("mira.solberg@aspen.test", "", disposition, False)
        .replace(b"Postmaster <postmaster@aspen.test>", b"Mira Solberg <mira.solberg@aspen.test>")
        .replace(b"Subject: Rejected: Newsletter 1", b"Subject: Read: Newsletter 1")
        .replace(b"Auto-Submitted: auto-replied (rejected)\r\nPrecedence: bulk\r\n", b"")
        .replace(b"was automatically rejected:", b"has been displayed.")
    )
    report, verdicts = classify_mail(mail)
    assert report.kind is not Kind.BOUNCE
    assert verdicts == []


def _amavis(subject: str, text: str, recipient: str, diagnostic: str, status: str) -> bytes:
    """amavisd-new 2.13.0's own notice (its DSN template and a delivery-status part)."""
    return (
        "Return-Path: <>\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        ' boundary="----------=_1796559589-18606-1"\r\n'
        "MIME-Version: 1.0\r\n"
        f"Subject: {subject}\r\n"
        "Message-ID: <VSJwTrdaVGhXCC@mx.willow.test>\r\n"
        'From: "Content-filter at mx.willow.test" <postmaster@mx.willow.test>\r\n'
        "To: <bulletin-am-01@sender.test>\r\n\r\n"
        "This is a multi-part message in MIME format...\r\n\r\n"
        "------------=_1796559589-18606-1\r\n"
        'Content-Type: text/plain; charset="us-ascii"\r\n\r\n'
        f"{text}\r\n"
        "------------=_1796559589-18606-1\r\n"
        'Content-Type: message/delivery-status; name="dsn_status.dsn"\r\n\r\n'
        "Reporting-MTA: dns; mx.willow.test\r\n"
        "Received-From-MTA: dns; mx.willow.test ([127.0.0.1])\r\n\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Final-Recipient: rfc822;{recipient}\r\n"
        f"Action: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        "------------=_1796559589-18606-1--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("subject", "text", "diagnostic", "status"),
    [
        (
            "BANNED contents from you (application/octet-stream,.exe,.exe-ms,setup.exe)",
            "BANNED CONTENTS ALERT\r\n\r\nOur content checker found\r\n"
            "    banned name: application/octet-stream,.exe,.exe-ms,setup.exe\r\n\r\n"
            "in email presumably from you <bulletin-am-01@sender.test>\r\n"
            "to the following recipient:\r\n-> ines.vidal@hazel.test\r\n",
            "554-5.7.0 Bounce, id=18606-01 - BANNED:\r\n"
            " 554 5.7.0 application/octet-stream,.exe,.exe-ms,setup.exe",
            "5.7.0",
        ),
        (
            "Undeliverable mail, invalid header section",
            "The message WAS NOT relayed to:\r\n  <ines.vidal@hazel.test>:\r\n"
            "   554 5.6.0 Bounce, id=18606-02-2 - BAD HEADER\r\n\r\nINVALID HEADER\r\n\r\n"
            '  Duplicate header field: "Subject"\r\n',
            "554 5.6.0 Bounce, id=18606-02-2 - BAD HEADER",
            "5.6.0",
        ),
        (
            "Considered UNSOLICITED BULK EMAIL, apparently from you",
            "A message from <bulletin-am-01@sender.test>\r\nto: ines.vidal@hazel.test\r\n\r\n"
            "was considered unsolicited bulk e-mail (UBE).\r\n",
            "554 5.7.0 Bounce, id=18605-03-3 - spam",
            "5.7.0",
        ),
        (
            "VIRUS in message apparently from you (Local.Test.EICAR.UNOFFICIAL)",
            "VIRUS ALERT\r\n\r\nOur content checker found\r\n"
            "    virus: Local.Test.EICAR.UNOFFICIAL\r\n",
            "554-5.7.0 Bounce, id=19939-03-4 - INFECTED:\r\n 554 5.7.0 Local.Test.EICAR.UNOFFICIAL",
            "5.7.0",
        ),
    ],
)
def test_amavisd_news_own_notices_are_receipt_rejections(
    subject: str, text: str, diagnostic: str, status: str
) -> None:
    # Measured once in round 35 and right before any rule (banned contents, a bad header
    # section, spam, a virus: the receiving site's content policy, 4).
    mail = _amavis(subject, text, "ines.vidal@hazel.test", diagnostic, status)
    report, verdicts = classify_mail(mail)
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("ines.vidal@hazel.test", 4, "failed")
    ]


def test_amavisd_new_reports_only_the_recipient_it_bounced() -> None:
    # Its text lists every recipient of the message, also the one whose copy passed (a
    # spam lover's); the report names only the bounced one.
    mail = _amavis(
        "Considered UNSOLICITED BULK EMAIL, apparently from you",
        "A message from <bulletin-am-09@sender.test>\r\nto: axel.strand@hazel.test\r\n"
        "to: lena.holm@hazel.test\r\n\r\nwas considered unsolicited bulk e-mail (UBE).\r\n",
        "axel.strand@hazel.test", "554 5.7.0 Bounce, id=18605-03-4 - spam", "5.7.0",
    )  # fmt: skip
    _, verdicts = classify_mail(mail)
    assert [v.recipient for v in verdicts] == ["axel.strand@hazel.test"]
