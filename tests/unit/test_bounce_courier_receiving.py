"""A receiving Courier's own checks in other MTAs' notices (issue #16, round 66), as Postfix
3.7, Exim 4.96 and Sendmail 8.17 wrote them on loopback
(``bench/bounce_accuracy/mtas/courier_receiving_*.py``; trimmed, domains and dates changed), and
the round's case file. Round 66 measured them once; the one rule it wrote reads Courier's
refusal of the sender's domain (BOFHCHECKDNS) as a sending Sendmail keeps it, its first line
only ("517-Domain does not exist: <domain>."), a refusal of the sender (4) and not the
recipient's domain (1).
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import MTAS
from bench.bounce_accuracy.mtas.cases import CASE_FILES, COURIER_RECEIVING_CASES, load, splits
from postline.bounce.classify import classify_reply
from postline.bounce.verdicts import classify_mail
from tests.mta_notices_support import FAILED_INTRO, FAILED_SUBJECT

POSTFIX = """\
Return-Path: <>
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
Subject: {subject}
To: news@example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="F411C2685C1.1796605173/mx.example.org"

--F411C2685C1.1796605173/mx.example.org
Content-Description: Notification
Content-Type: text/plain; charset=utf-8

This is the mail system at host mx.example.org.

{intro}

                   The mail system

<una.ef@example.net>: host 192.0.2.25[192.0.2.25] said: {reply} (in reply to {command})

--F411C2685C1.1796605173/mx.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; una.ef@example.net
Action: {action}
Status: {status}
Remote-MTA: dns; 192.0.2.25
Diagnostic-Code: smtp; {reply}

--F411C2685C1.1796605173/mx.example.org--
"""
SENDMAIL = """\
Return-Path: <>
Date: Mon, 7 Dec 2026 01:06:13 GMT
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>
To: <news@gone.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="6B716Dd9007847.1796605573/mx.example.org"
Subject: Returned mail: see transcript for details
Auto-Submitted: auto-generated (failure)

This is a MIME-encapsulated message

--6B716Dd9007847.1796605573/mx.example.org

The original message was received at Mon, 7 Dec 2026 01:06:13 GMT
from localhost [127.0.0.1]

   ----- The following addresses had permanent fatal errors -----
<una.ef@example.net>
    (reason: {first})

   ----- Transcript of session follows -----
... while talking to [192.0.2.25]:
>>> MAIL From:<news@gone.example> SIZE=361
<<< {first}
<<< {second}
554 5.0.0 Service unavailable

--6B716Dd9007847.1796605573/mx.example.org
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Arrival-Date: Mon, 7 Dec 2026 01:06:13 GMT

Final-Recipient: RFC822; una.ef@example.net
X-Actual-Recipient: rfc822; una.ef@example.net
Action: failed
Status: 5.0.0
Diagnostic-Code: SMTP; {first}
Last-Attempt-Date: Mon, 7 Dec 2026 01:06:13 GMT

--6B716Dd9007847.1796605573/mx.example.org--
"""
MAIL = "MAIL FROM command"
RCPT = "RCPT TO command"
DATA = "end of DATA command"
# Courier 1.0.16's refusals (courieresmtpd, submit, bofh, couriertcpd, a perlfilter of
# ours), the command they answer, and their labels.
REFUSALS = [
    ("550 User <una.ef> unknown", RCPT, 2),
    ("513 Relaying denied.", RCPT, 4),
    ("511 192.0.2.7 is listed in dnsbl.example.org", RCPT, 4),
    (
        "517-Domain does not exist: gone.example. 517 Invalid domain, see"
        " <URL:https://www.ietf.org/rfc/rfc1035.txt>",
        MAIL,
        4,
    ),
    ("517 Sender rejected: news@example.org", MAIL, 4),
    ("517 Mail server at ::ffff:192.0.2.66 is blocked.", MAIL, 4),
    (
        "517 SPF fail news@thorn.example: Address does not pass the Sender Policy Framework",
        MAIL,
        4,
    ),
    ("531 Too many recipients.", RCPT, 4),
    ("534 SIZE=Message too big.", MAIL, 8),
    ("550 Message refused by the content policy of this site.", DATA, 4),
]
# Its temporary refusals at every try (the warning's label and the final notice's).
DEFERRALS = [
    "417 DNS lookup failure: flaky.example.  Try again later.",
    "417 SPF softfail news@bramble.example: Address does not pass the Sender Policy Framework",
]


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def _postfix(reply: str, command: str, action: str, status: str) -> str:
    subject = FAILED_SUBJECT if action == "failed" else "Delayed Mail (still being retried)"
    intro = FAILED_INTRO if action == "failed" else "This is a warning only."
    return POSTFIX.format(subject=subject, intro=intro, reply=reply, command=command,
                          action=action, status=status)  # fmt: skip


@pytest.mark.parametrize(("reply", "command", "status"), REFUSALS)
def test_the_receiving_couriers_refusals_in_postfixs_notices(
    reply: str, command: str, status: int
) -> None:
    assert _verdict(_postfix(reply, command, "failed", "5.0.0")) == (
        "una.ef@example.net", status, "failed",
    )  # fmt: skip


@pytest.mark.parametrize("reply", DEFERRALS)
def test_its_deferrals_in_postfixs_warning_and_final_notice(reply: str) -> None:
    assert _verdict(_postfix(reply, MAIL, "delayed", "4.0.0")) == ("una.ef@example.net", 4,
                                                                  "deferred")  # fmt: skip
    assert _verdict(_postfix(reply, MAIL, "failed", "4.0.0")) == ("una.ef@example.net", 4,
                                                                 "failed")  # fmt: skip


def test_couriers_sender_domain_refusal_as_sendmail_keeps_it_is_the_senders() -> None:
    # Sendmail keeps the reply's first line in its reason and Diagnostic-Code; without the
    # rule, "Domain does not exist" read the recipient's domain as unknown (1).
    raw = SENDMAIL.format(
        first="517-Domain does not exist: gone.example.",
        second="517 Invalid domain, see <URL:https://www.ietf.org/rfc/rfc1035.txt>",
    )
    assert _verdict(raw) == ("una.ef@example.net", 4, "failed")
    assert classify_reply(517, "", "517-Domain does not exist: example.org.").status == 4


@pytest.mark.parametrize(
    "reply",
    [
        "550 Domain does not exist: example.org",
        "550 The domain example.org does not exist",
        "550 5.1.2 Host unknown (Name server: example.test: host not found)",
    ],
)
def test_a_recipients_domain_that_does_not_exist_stays_unknown(reply: str) -> None:
    assert classify_reply(550, "", reply).status == 1


def test_the_round_66_case_file_is_a_committed_set() -> None:
    assert COURIER_RECEIVING_CASES in CASE_FILES
    mtas = ("courier_receiving_postfix", "courier_receiving_exim", "courier_receiving_sendmail")
    for mta in mtas:
        assert mta in MTAS
    assert set(splits(COURIER_RECEIVING_CASES)) == set(mtas)
    senders: set[str] = set()
    for mta in mtas:
        cases = load(mta, COURIER_RECEIVING_CASES)
        assert len(cases) == 15
        rows = [x for case in cases for x in (*case.failed.values(), *case.delayed.values())]
        assert len(rows) == 18
        assert all(label.note for label in rows)
        assert sum(1 for case in cases if case.delayed) == 3
        senders |= {case.sender for case in cases}
    assert len(senders) == 45
