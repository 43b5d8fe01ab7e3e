"""XMail's notices (issue #16, round 43), in the form XMail 1.27 writes them
(``QueueUtils.cpp``: numbered sections "[<00>]" to "[<05>]", the reason under "[<02>]", its
own note under "[<03>]" when it will try again, the returned message's headers under "[<05>]
Here is listed the initial part of the message:"). The texts are those XMail wrote on loopback
in round 43 (``bench/bounce_accuracy/mtas/xmail.py``; addresses, ids and dates changed); each
test names the behaviour it holds, and the last ones check the case file.
"""

from __future__ import annotations

import pytest
import yaml

from bench.bounce_accuracy.mtas import xmail as harness
from bench.bounce_accuracy.mtas.cases import XMAIL_CASES
from postline.bounce.classify import reply_rules
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set

NOTE = (
    "[<03>] Note:\r\n\r\n"
    "** This is a temporary error and you do not have to resend the message\r\n"
    "** The system tried to send the message at      : Sun, 6 Dec 2026 15:18:23 -0000\r\n"
    "** The current number of delivery attempts is   : 1\r\n"
    "** The system will try to resend the message at : Sun, 6 Dec 2026 15:18:33 -0000\r\n"
    "\r\n\r\n\r\n"
)


def _xmail(address: str, reason: str, server: str = "mx.example.org", note: str = "") -> bytes:
    spool = "1796570303327.7f4f38ff16c0.47df.c.vm"
    server_line = f"Server:    <{server}> [192.0.2.25]\r\n" if server else ""
    return (
        "Return-Path: <root@example.net>\r\n"
        "Date:   Sun, 6 Dec 2026 15:18:23 -0000\r\n"
        f"X-MessageId: <{spool}>\r\n"
        "X-SmtpMessageId: <L6>\r\n"
        "From: example.net PostMaster <root@example.net>\r\n"
        "To: news@example.test\r\n"
        f"Subject: Error sending message [{spool}] from [example.net]\r\n"
        "X-MailerServer: XMail 1.27\r\n"
        f"X-MailerError: Message = [{spool}] Server = [example.net]\r\n"
        "\r\n"
        f"[<00>] XMail bounce: Rcpt=[{address}];Error=[{reason}]\r\n\r\n\r\n"
        f"[<01>] Error sending message [{spool}] from [example.net].\r\n\r\n"
        "ID:        <L6>\r\n"
        "Mail From: <news@example.test>\r\n"
        f"Rcpt To:   <{address}>\r\n"
        f"{server_line}\r\n\r\n"
        "[<02>] The reason of the delivery failure was:\r\n\r\n"
        f"{reason}\r\n\r\n\r\n"
        f"{note}"
        "[<05>] Here is listed the initial part of the message:\r\n\r\n"
        "Received: from /spool/local\r\n"
        "\tby example.net with [XMail 1.27 LMAIL Server]\r\n"
        f"\tfor <{address}> from <news@example.test>;\r\n"
        "\tSun, 6 Dec 2026 15:18:23 -0000\r\n"
        "From: Newsletter <news@example.test>\r\n"
        f"To: {address}\r\n"
        "Subject: Newsletter 1\r\n"
        "Message-ID: <179657030137.18395.863105803362440627@example.test>\r\n"
        "\r\n"
    ).encode()


def _read(mail: bytes) -> list[tuple[str, int, str]]:
    _, verdicts = classify_mail(mail)
    return [(v.recipient, v.status, v.delivery) for v in verdicts]


def test_the_returned_headers_heading_is_no_blocklist() -> None:
    # "[<05>] Here is listed the initial part of the message:" starts the returned message;
    # read with the reason, its "listed" made every reason without a code a blocklisting (4).
    address = "sofia.kramer@example.net"
    mail = _xmail(address, "User maximum mailbox size reached", server="")
    assert _read(mail) == [(address, 5, "failed")]


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("550 5.1.1 <{a}>: Recipient address rejected: User unknown in virtual mailbox table", 2),
        ("550 No such user here", 2),
        ("552 5.2.2 <{a}>: Mailbox quota exceeded", 5),
        ("554 5.7.1 <{a}>: Relay access denied", 4),
        ("552 5.3.4 Message size exceeds fixed maximum message size", 8),
        ('Recipient domain "example.org" does not exist (or it has a misconfigured DNS)', 1),
        # XMail's own words for a domain with no MX and no address record (its notice at once)
        ("Requested DNS record not found", 1),
        # its reason once the tries ran out, whatever the temporary failure was
        ("The maximum number of delivery attempts has been reached", 3),
    ],
)
def test_a_final_notice_is_read_by_its_reason(reason: str, status: int) -> None:
    address = "olga.berg@example.org"
    assert _read(_xmail(address, reason.format(a=address))) == [(address, status, "failed")]


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        # a refused connection, a server that never greets, an MX host that does not exist:
        # XMail's own code and no cause
        ("417 Temporary delivery error", 3),
        ("452 4.2.2 <{a}>: Mailbox is full", 5),
        # Postfix's own table lookup failed at the receiving server: its trouble
        ("451 4.3.0 <{a}>: Temporary lookup failure", 7),
    ],
)
def test_a_notice_after_the_first_try_is_a_delay(reason: str, status: int) -> None:
    # "[<03>] Note:" is XMail's own ("a temporary error ... will try to resend"), read as
    # the notice's words, not as the recipient's reason.
    address = "eva.stone@example.org"
    mail = _xmail(address, reason.format(a=address), note=NOTE)
    assert _read(mail) == [(address, status, "deferred")]


def test_the_receiving_servers_lookup_failure_after_retries_stays_an_expiry() -> None:
    # The reply is the receiving server's trouble (7 while the MTA retries), and a final
    # failure after it is an expiry: Haraka's notice once its retries ran out (round 33,
    # Status 5.3.0 beside the 451 it quotes) stays 3.
    address = "jorunn.tveit@example.org"
    reply = f"451 4.3.0 <{address}>: Temporary lookup failure"
    assert reply_rules().reason_for(451, "4.3.0", reply) == "system-error"
    boundary = "_haraka_boundary_"
    mail = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        "To: news@example.test\r\nSubject: Mail delivery failed: returning message to sender\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its recipients.\r\n"
        "This is a permanent error. The following address(es) failed:\r\n\r\n"
        f"Failure Reason: Error: Too many failures (Some recipients temp failed: <{address}>)\r\n"
        "\r\n"
        f"<{address}>: {reply}\r\n"
        f"\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns;mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822;{address}\r\nAction: failed\r\nStatus: 5.3.0\r\n"
        f"Diagnostic-Code: smtp;{reply}\r\n"
        f"\r\n--{boundary}--\r\n"
    ).encode()
    assert _read(mail) == [(address, 3, "failed")]


def test_the_case_file_records_the_source_and_is_scored() -> None:
    assert_committed_set(XMAIL_CASES, ("xmail",), cases=(19,), rows=(24,), senders=19, split="dev")
    header = XMAIL_CASES.read_text("utf-8")
    assert harness.COMMIT in header and "GerHobbelt/xmail" in header
    assert len(yaml.safe_load(header)["xmail"]) == 19
