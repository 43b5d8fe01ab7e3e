"""A receiving Postfix's own restrictions and limits run for real (issue #16, round 60):
smtpd's size limit, its DNS checks of the recipient's and the sender's domains, of the
client's name and HELO, anvil's message rate, address verification, postscreen's DNSBL and
``queue_minfree``, behind Postfix, Exim and Sendmail sending
(``bench/bounce_accuracy/mtas/restrictions_postfix.py``, ``restrictions_exim.py``,
``restrictions_sendmail.py``), the notices they wrote (trimmed, domains and dates changed),
and the round's case file.

Round 60 measured the set once (32/39). Its misses had two causes, each with a rule:

* address verification whose next hop could not be reached, "450 4.1.1 ... unverified
  address: connect to ...: Connection refused" at every try, read 7 (connection-failed) in
  the final notice after the queue lifetime too, where a final of the server's other
  trouble is the expiry (3): Postfix's "Recipient address rejected: unverified address:" is
  now system-error's words (the receiving server could not check the address), which
  ``gave_up_replies`` makes the expiry in a final notice (connection-failed is not among
  them: a reply saying only "Connection was dropped" stays 7, round 9's decision);
* "452 4.3.1 Insufficient system storage" answered to MAIL FROM read 4, a refusal of the
  sender (``rejected``'s MAIL stage), where the words say the receiving server's storage is
  full (5): system-full's words now veto that stage.

The first tests fail without those rules; the counter-examples and the round's other rows
hold what the classifier read before them.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import MTAS
from bench.bounce_accuracy.mtas.cases import CASE_FILES, RESTRICTION_CASES, load, splits
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_notices_support import FAILED_INTRO

POSTFIX = """\
Return-Path: <>
Received: by mx.example.net (Postfix)
\tid B4C0F210068; Sun,  6 Dec 2026 21:19:20 +0000 (UTC)
Date: Sun,  6 Dec 2026 21:19:20 +0000 (UTC)
From: Mail Delivery System <MAILER-DAEMON@example.net>
Subject: {subject}
To: news@example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4AF8F210523.1796591960/mx.example.net"
Message-Id: <20261206211920.B4C0F210068@mx.example.net>

This is a MIME-encapsulated message.

--4AF8F210523.1796591960/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=utf-8

This is the mail system at host mx.example.net.

{intro}

                   The mail system

<{recipient}>: host 192.0.2.25[192.0.2.25] said: {reply} (in reply to {command}
    command)

--4AF8F210523.1796591960/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4AF8F210523
X-Postfix-Sender: rfc822; news@example.org
Arrival-Date: Sun,  6 Dec 2026 21:18:10 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; 192.0.2.25
Diagnostic-Code: smtp; {reply}

--4AF8F210523.1796591960/mx.example.net
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Newsletter <news@example.org>
To: {recipient}
Subject: Newsletter 8

--4AF8F210523.1796591960/mx.example.net--
"""

DELAYED_INTRO = """####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 0 hour(s)."""

SENDMAIL = """\
Return-Path: <>
Date: Sun, 6 Dec 2026 21:24:38 GMT
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>
Message-Id: <202612062124.6B6LOcGu032429@mx.example.net>
To: <news@example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="6B6LOcGu032429.1796592278/mx.example.net"
Subject: Returned mail: see transcript for details
Auto-Submitted: auto-generated (failure)

This is a MIME-encapsulated message

--6B6LOcGu032429.1796592278/mx.example.net

The original message was received at Sun, 6 Dec 2026 21:21:38 GMT
from localhost [127.0.0.1]

   ----- The following addresses had permanent fatal errors -----
<{recipient}>
    (reason: {reply})

   ----- Transcript of session follows -----
... while talking to [192.0.2.25]:
>>> {command}
<<< {reply}
<{recipient}>... Deferred: {reply}
Message could not be delivered for 3 minutes
Message will be deleted from queue

--6B6LOcGu032429.1796592278/mx.example.net
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Sun, 6 Dec 2026 21:21:38 GMT

Final-Recipient: RFC822; {recipient}
Action: failed
Status: 4.4.7
Diagnostic-Code: SMTP; {reply}
Last-Attempt-Date: Sun, 6 Dec 2026 21:24:38 GMT

--6B6LOcGu032429.1796592278/mx.example.net--
"""

RECIPIENT = "hans.tveit@example.com"
UNVERIFIED = (
    f"450 4.1.1 <{RECIPIENT}>: Recipient address rejected: unverified address: "
    "connect to 127.0.0.1[127.0.0.1]:40771: Connection refused"
)
STORAGE = "452 4.3.1 Insufficient system storage"


def _postfix(reply: str, command: str, *, delayed: bool = False) -> bytes:
    status = reply.split()[1]
    return POSTFIX.format(
        subject="Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned "
        "to Sender", intro=DELAYED_INTRO if delayed else FAILED_INTRO, recipient=RECIPIENT,
        reply=reply, command=command, action="delayed" if delayed else "failed", status=status,
    ).encode()  # fmt: skip


def _answer(raw: bytes) -> tuple[int, str]:
    _, verdicts = classify_mail(raw)
    (verdict,) = verdicts
    assert verdict.recipient == RECIPIENT
    return verdict.status, verdict.delivery


def test_postfixs_final_notice_of_an_unreachable_verification_next_hop_is_an_expiry() -> None:
    assert _answer(_postfix(UNVERIFIED, "RCPT TO")) == (3, "failed")


def test_sendmails_final_notice_of_the_same_is_an_expiry() -> None:
    raw = SENDMAIL.format(recipient=RECIPIENT, reply=UNVERIFIED, command="DATA").encode()
    assert _answer(raw) == (3, "failed")


def test_exims_final_diagnostic_of_the_same_is_an_expiry() -> None:
    # Exim's final notice quotes the reply with its own words after it; its parser gives the
    # reply's own status
    text = f"{UNVERIFIED}: retry timeout exceeded"
    assert classify_failure(450, "4.1.1", text, command="RCPT", action="failed").status == 3


def test_insufficient_storage_answered_to_mail_from_is_over_capacity() -> None:
    assert _answer(_postfix(STORAGE, "MAIL FROM")) == (5, "failed")
    assert _answer(_postfix(STORAGE, "MAIL FROM", delayed=True)) == (5, "deferred")
    raw = SENDMAIL.format(recipient=RECIPIENT, reply=STORAGE, command="MAIL From:<n@x>").encode()
    assert _answer(raw) == (5, "failed")


# Counter-examples: what the rules leave as it was.


def test_the_unreachable_next_hop_in_a_delay_warning_stays_the_servers_error() -> None:
    assert _answer(_postfix(UNVERIFIED, "RCPT TO", delayed=True)) == (7, "deferred")


@pytest.mark.parametrize("action", ["delayed", "failed"])
def test_a_probes_own_reason_comes_before_the_verification_words(action: str) -> None:
    probe = (
        f"450 4.1.1 <{RECIPIENT}>: Recipient address rejected: unverified address: host "
        f"mx.example.com[192.0.2.1] said: 452 4.2.2 <{RECIPIENT}>: Mailbox full (in reply to "
        "RCPT TO command)"
    )
    assert classify_failure(450, "4.1.1", probe, command="RCPT", action=action).status == 5
    sender = "450 4.1.8 <news@example.org>: Sender address rejected: unverified address: x"
    assert classify_failure(450, "4.1.8", sender, command="RCPT", action=action).status == 4


@pytest.mark.parametrize(
    ("text", "status", "code", "enhanced"),
    [
        # the sending MTA's own connection refused, no reply: gave_up_from's expiry, as before
        ("connect to mx.example.org[192.0.2.1]:25: Connection refused", 3, 0, "4.4.1"),
        # a reply that names the server's load stays server-busy (not among gave_up_replies)
        ("421 4.4.5 Server busy, try again later", 7, 421, "4.4.5"),
        # a temporary reply naming a cause of the recipient keeps it in a final notice
        ("452 4.2.2 Mailbox full", 5, 452, "4.2.2"),
    ],
)
def test_other_final_failures_keep_their_answers(
    text: str, status: int, code: int, enhanced: str
) -> None:
    assert classify_failure(code, enhanced, text, action="failed").status == status


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.1.8 <news@example.org>: Sender address rejected: Domain not found",
        "553 5.7.1 <news@example.org>: Sender address rejected: not owned by user",
        "550 5.7.1 Service unavailable; client [192.0.2.25] blocked using bl.example.net",
    ],
)
def test_refusals_answered_to_mail_from_stay_refusals(reply: str) -> None:
    assert classify_failure(int(reply[:3]), reply.split()[1], reply, command="MAIL").status == 4


@pytest.mark.parametrize(
    ("reply", "command", "status"),
    [
        (f"550 5.1.2 <{RECIPIENT}>: Recipient address rejected: Domain not found", "RCPT TO", 1),
        ("550 5.1.8 <news@example.org>: Sender address rejected: Domain not found", "RCPT TO", 4),
        ("550 5.7.25 Client host rejected: cannot find your hostname, [192.0.2.25]", "RCPT TO", 4),
        ("550 5.7.1 <mx.example.net>: Helo command rejected: Host not found", "RCPT TO", 4),
        ("450 4.7.1 Error: too much mail from 192.0.2.25", "MAIL FROM", 4),
        (
            f"550 5.1.1 <{RECIPIENT}>: Recipient address rejected: undeliverable address: host "
            f"127.0.0.1[127.0.0.1] said: 550 5.1.1 <{RECIPIENT}>: Recipient address rejected: "
            "User unknown in virtual mailbox table (in reply to RCPT TO command)",
            "RCPT TO",
            2,
        ),
        (
            "550 5.7.1 Service unavailable; client [192.0.2.25] blocked using bl.example.net",
            "RCPT TO",
            4,
        ),
    ],
)
def test_the_rounds_other_refusals_in_postfixs_notices(
    reply: str, command: str, status: int
) -> None:
    assert _answer(_postfix(reply, command))[0] == status


def test_the_round_is_registered() -> None:
    assert RESTRICTION_CASES in CASE_FILES
    for mta in ("restrictions_postfix", "restrictions_exim", "restrictions_sendmail"):
        assert mta in MTAS
        assert splits(RESTRICTION_CASES)[mta] in ("unseen", "dev")


def test_the_cases_labels_follow_the_rounds_decisions() -> None:
    expected = {
        "size-limit": 8,
        "unknown-recipient-domain": 1,
        "unknown-sender-domain": 4,
        "unknown-client-hostname": 4,
        "unknown-helo-hostname": 4,
        "message-rate-limit": 4,
        "unverified-recipient": 2,
        "unverified-next-hop-down": 3,
        "postscreen-dnsbl": 4,
        "insufficient-storage": 5,
        # the second part, added after the rules (Sendmail: its first case only)
        "connection-rate-limit": 4,
        "recipient-rate-limit": 4,
        "relay-deferred": 4,
    }
    warnings = {
        "message-rate-limit": 4,
        "unverified-next-hop-down": 7,
        "insufficient-storage": 5,
        "connection-rate-limit": 4,
        "recipient-rate-limit": 4,
        "relay-deferred": 4,
    }
    left_out = {"restrictions_sendmail": {"recipient-rate-limit", "relay-deferred"}}
    for mta in ("restrictions_postfix", "restrictions_exim", "restrictions_sendmail"):
        cases = load(mta, RESTRICTION_CASES)
        assert {case.name for case in cases} == set(expected) - left_out.get(mta, set())
        for case in cases:
            assert [label.status for label in case.failed.values()] == [expected[case.name]]
            assert all(label.note for label in case.failed.values())
            delayed = [label.status for label in case.delayed.values()]
            assert delayed == ([warnings[case.name]] if case.name in warnings else [])
