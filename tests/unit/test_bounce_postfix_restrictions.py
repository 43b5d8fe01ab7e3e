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

from bench.bounce_accuracy.mtas.cases import RESTRICTION_CASES, load
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    BANNER_KIND,
    FAILED_KIND,
    SENDMAIL_EXPIRED,
    postfix_notice,
    sendmail_final,
)

RECIPIENT = "hans.tveit@example.com"
UNVERIFIED = (
    f"450 4.1.1 <{RECIPIENT}>: Recipient address rejected: unverified address: "
    "connect to 127.0.0.1[127.0.0.1]:40771: Connection refused"
)
STORAGE = "452 4.3.1 Insufficient system storage"


def _postfix(reply: str, command: str, *, delayed: bool = False) -> bytes:
    return postfix_notice(
        RECIPIENT, reply, status=reply.split()[1], kind=BANNER_KIND if delayed else FAILED_KIND,
        stage=f"{command}\n    command", host="mx.example.net",
        sender="Mail Delivery System <MAILER-DAEMON@example.net>",
    ).encode()  # fmt: skip


def _sendmail(reply: str, command: str) -> bytes:
    session = f">>> {command}\n<<< {reply}\n<{RECIPIENT}>... Deferred: {reply}\n{SENDMAIL_EXPIRED}"
    return sendmail_final(RECIPIENT, reply, session, status="4.4.7", host="mx.example.net").encode()


def _answer(raw: bytes) -> tuple[int, str]:
    _, verdicts = classify_mail(raw)
    (verdict,) = verdicts
    assert verdict.recipient == RECIPIENT
    return verdict.status, verdict.delivery


def test_postfixs_final_notice_of_an_unreachable_verification_next_hop_is_an_expiry() -> None:
    assert _answer(_postfix(UNVERIFIED, "RCPT TO")) == (3, "failed")


def test_sendmails_final_notice_of_the_same_is_an_expiry() -> None:
    assert _answer(_sendmail(UNVERIFIED, "DATA")) == (3, "failed")


def test_exims_final_diagnostic_of_the_same_is_an_expiry() -> None:
    # Exim's final notice quotes the reply with its own words after it; its parser gives the
    # reply's own status
    text = f"{UNVERIFIED}: retry timeout exceeded"
    assert classify_failure(450, "4.1.1", text, command="RCPT", action="failed").status == 3


def test_insufficient_storage_answered_to_mail_from_is_over_capacity() -> None:
    assert _answer(_postfix(STORAGE, "MAIL FROM")) == (5, "failed")
    assert _answer(_postfix(STORAGE, "MAIL FROM", delayed=True)) == (5, "deferred")
    assert _answer(_sendmail(STORAGE, "MAIL From:<n@x>")) == (5, "failed")


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
    assert_committed_set(
        RESTRICTION_CASES,
        ("restrictions_postfix", "restrictions_exim", "restrictions_sendmail"),
        cases=(13, 13, 11),
        rows=(19, 19, 15),
        senders=37,
    )


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
