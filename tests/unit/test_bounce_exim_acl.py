"""Exim 4.96 as the receiving server, refusing with its own ACLs (issue #16, round 59): the
notices Postfix, Exim and Sendmail wrote of its answers on loopback
(``bench/bounce_accuracy/mtas/exim_receiving_*.py``; trimmed, domains and dates changed), and
the round's case file.

Round 59 measured the set once (38/51); its misses had four causes, each with a rule in
``smtp_replies.yaml``: the whole reply "550 Unrouteable address" (a recipient no router of
the receiving Exim's own domain takes) read 1 (host-unknown's words) where the mailbox does
not exist (2); "451 Sender rate exceeds 0.5 messages per 1h" (the ratelimit example of Exim's
specification) read 3 or 99 where a rate limit is a refusal (4); "451 Could not complete
recipient verify callout" read 3 in the warnings and 99 in Postfix's final notice where the
receiving server's temporary failure is 7 while retried and 3 once the retries ran out; and
Sendmail's own Status 5.2.2 over "552 too many recipients" read 5 (a full mailbox). The tests
marked so fail without those rules; the others hold what the classifier reads today.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import EXIM_ACL_CASES, load
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    exim_notice,
    postfix_kind,
    postfix_notice,
    sendmail_notice,
    sendmail_report,
)

# Sendmail's final notice of the receiving Exim's 552 and 554 to one message for three
# recipients.
SENDMAIL_TOO_MANY = sendmail_notice(
    """\
... while talking to [192.0.2.25]:
>>> DATA
<<< 552 too many recipients
554 5.0.0 Service unavailable
<<< 554 Too many recipients
554 5.0.0 Service unavailable""",
    [
        sendmail_report("lin.se@example.net", status="5.2.2", reply="552 too many recipients"),
        sendmail_report("mos.se@example.net", status="5.5.0"),
        sendmail_report("nia.se@example.net", status="5.5.0"),
    ],
    errors="""\
<lin.se@example.net>
    (reason: 552 too many recipients)
<mos.se@example.net>
<nia.se@example.net>
""",
    host="mx.example.net",
)

RECIPIENT = "acy.pa@example.net"
UNROUTEABLE = "550 Unrouteable address"
RATE = "451 Sender rate exceeds 0.5 messages per 1h"
CALLOUT = "451 Could not complete recipient verify callout"


def _postfix(reply: str, *, delayed: bool = False) -> str:
    status = "5.0.0" if reply.startswith("5") else "4.0.0"
    return postfix_notice(RECIPIENT, reply, status=status, kind=postfix_kind(delayed=delayed))


def _verdicts(raw: str) -> list[tuple[str, int | None, str | None]]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    return [(v.recipient, v.status, v.delivery) for v in found]


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    (found,) = _verdicts(raw)
    return found


def test_a_remote_exims_unrouteable_address_is_an_unknown_user() -> None:
    # read 1 (host-unknown's words) before round 59, in Postfix's and Exim's notices
    assert _verdict(_postfix(UNROUTEABLE)) == (RECIPIENT, 2, "failed")
    assert _verdict(exim_notice(RECIPIENT, UNROUTEABLE)) == (RECIPIENT, 2, "failed")


def test_the_ratelimit_examples_words_are_a_rate_limit() -> None:
    # read 3 (the warning: a delay and no words) and 99 (Postfix's final) before round 59
    assert _verdict(_postfix(RATE, delayed=True)) == (RECIPIENT, 4, "deferred")
    assert _verdict(_postfix(RATE)) == (RECIPIENT, 4, "failed")
    assert _verdict(exim_notice(RECIPIENT, RATE, expired=True)) == (RECIPIENT, 4, "failed")


def test_a_callout_that_could_not_be_made_is_the_servers_error_then_an_expiry() -> None:
    # read 3 (the warning) and 99 (Postfix's final) before round 59
    assert _verdict(_postfix(CALLOUT, delayed=True)) == (RECIPIENT, 7, "deferred")
    assert _verdict(_postfix(CALLOUT)) == (RECIPIENT, 3, "failed")


def test_sendmails_5_2_2_over_too_many_recipients_is_no_full_mailbox() -> None:
    # the first row read 5 (Sendmail's own 5.2.2 for a 552) before round 59
    assert _verdicts(SENDMAIL_TOO_MANY) == [
        ("lin.se@example.net", 4, "failed"),
        ("mos.se@example.net", 4, "failed"),
        ("nia.se@example.net", 4, "failed"),
    ]


@pytest.mark.parametrize(
    ("text", "action", "status"),
    [
        # round 59's rules
        (UNROUTEABLE, "failed", 2),
        ("550 5.1.1 Unrouteable address", "failed", 2),
        (RATE, "delayed", 4),
        (CALLOUT, "delayed", 7),
        ("451 Could not complete sender verify", "delayed", 7),
        ("451 Could not complete sender verify callout", "delayed", 7),
        # counter-examples: a sender verification that failed refuses the sender, and the
        # words inside another reply or without a reply code keep their reading
        ("550 Verification failed for <news@example.org> Unrouteable address Sender verify "
         "failed", "failed", 4),
        ("550 Unrouteable mail domain", "failed", 1),
        ("550 Unrouteable address - the domain has no mail exchanger", "failed", 1),
        ("550 Sender verify failed", "failed", 4),
        ("552 5.2.2 Mailbox full: too much mail", "failed", 5),
        ("552 Message size exceeds maximum permitted", "failed", 8),
    ],
)  # fmt: skip
def test_the_rules_words_against_counter_examples(text: str, action: str, status: int) -> None:
    code = int(text[:3])
    enhanced = text.split()[1] if text.split()[1][:1].isdigit() else ""
    found = classify_failure(code, enhanced, text, command="RCPT", action=action)
    assert found.status == status


def test_exims_own_unrouteable_address_stays_an_unknown_host() -> None:
    # no SMTP reply: Exim's own routing found no route (the shared corpus's lhost-mailru-06)
    found = classify_failure(0, "", "Unrouteable address", action="failed")
    assert found.status == 1


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550-Verification failed for <news@example.org> 550-Unrouteable address 550 Sender "
         "verify failed", 4),
        ("550-Callout verification failed: 550 550 5.1.1 <acy.pa@example.net>: No such user "
         "here", 2),
        ("550-rejected because 192.0.2.1 is in a black list at dnsbl.example.net 550-192.0.2.1 "
         "is listed as a source of unsolicited mail", 4),
        ("550 relay not permitted", 4),
        ("550 Administrative prohibition", 4),
        ("550 Your message was refused by the content policy of this site", 4),
    ],
)  # fmt: skip
def test_the_other_refusals_in_postfixs_notices(reply: str, status: int) -> None:
    assert _verdict(_postfix(reply)) == (RECIPIENT, status, "failed")


def test_the_bare_defer_is_the_servers_error_then_an_expiry() -> None:
    reply = "451 Temporary local problem - please try later"
    assert _verdict(_postfix(reply, delayed=True)) == (RECIPIENT, 7, "deferred")
    assert _verdict(_postfix(reply)) == (RECIPIENT, 3, "failed")


MTA_NAMES = ("exim_receiving_postfix", "exim_receiving_exim", "exim_receiving_sendmail")


def test_the_round_is_registered() -> None:
    assert_committed_set(
        EXIM_ACL_CASES, MTA_NAMES, cases=(12, 12, 12), rows=(17, 17, 17), senders=36
    )


def test_the_cases_labels_follow_the_rounds_decisions() -> None:
    expected = {
        "exim-unknown-user": (None, (2, "failed")),
        "exim-sender-verify": (None, (4, "failed")),
        "exim-callout-refused": (None, (2, "failed")),
        "exim-callout-unreachable": ((7, "deferred"), (3, "failed")),
        "exim-ratelimit": ((4, "deferred"), (4, "failed")),
        "exim-dnsbl": (None, (4, "failed")),
        "exim-message-size": (None, (8, "failed")),
        "exim-too-many-recipients": (None, (4, "failed")),
        "exim-relay-not-permitted": (None, (4, "failed")),
        "exim-acl-defer": ((7, "deferred"), (3, "failed")),
        "exim-administrative-prohibition": (None, (4, "failed")),
        "exim-deny-custom-data": (None, (4, "failed")),
    }
    for mta in MTA_NAMES:
        cases = load(mta, EXIM_ACL_CASES)
        assert sorted(case.name for case in cases) == sorted(expected)
        for case in cases:
            delayed, failed = expected[case.name]
            assert {(x.status, x.delivery) for x in case.failed.values()} == {failed}
            if delayed is None:
                assert not case.delayed, case.name
            else:
                assert {(x.status, x.delivery) for x in case.delayed.values()} == {delayed}
            assert all(label.note for label in (*case.failed.values(), *case.delayed.values()))
