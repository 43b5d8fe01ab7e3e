"""What the list managers of round 58 (issue #16) send a poster, as SmartList 3.15 and
Schleuder 4.0.3 behind Postfix (Debian 12's packages, run on loopback:
``bench/bounce_accuracy/mtas/smartlist.py``, ``schleuder.py``) wrote it (trimmed, domains
changed), and the round's case files. The SmartList command-answer test fails without round
58's first rule (SmartList's answers to a command at a list's -request address list the
requester's address under "the following address:", a bounce phrase, and were read as a
bounce of it, 99); the Schleuder refusal test without its second (Postfix's "Command died
with status 1", 5.3.0, read 7, whatever Schleuder's output said).
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas import gnarwl, schleuder, smartlist
from bench.bounce_accuracy.mtas.cases import GNARWL_CASES, SCHLEUDER_CASES, SMARTLIST_CASES, load
from postline.bounce.mail import Kind
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import postfix_notice

ANSWER = """\
Return-Path: <members-request@lists.example.net>
To: news@example.org
References: <1796586695.1@example.org>
In-Reply-To: <1796586695.1@example.org>
X-Loop: members@lists.example.net
From: {sender}
Subject: {subject}

{text}
"""
REQUESTED = "It has been requested that the following address:\n\n       news@example.org\n\n"
CONFIRM = (
    REQUESTED + "should be added to the members mailing list.\n\n"
    "The address has NOT yet been subscribed to the mailing list.\n"
    "To subscribe you need to confirm the subscription\n"
    "request by sending an email to the address:\n\n        members-request@lists.example.net\n\n"
    "with the Subject string:\n\n         CONFIRM s120619513514836\n"
)
UNSUBSCRIBE_FAILED = (
    REQUESTED + "should be deleted from the members mailing list.\n\n"
    "Sorry, but this address has NOT been found on the list.\n\n"
    "Please check carefully the spelling of this address.\n"
    "It follows a copy of your unsubscribe request\n\n"
    ">From news@example.org  Sun Dec  6 19:55:00 2026\n>Subject: unsubscribe\n>\n>unsubscribe\n"
)
SMARTLIST = "SmartList <members-request@lists.example.net>"


def _report(subject: str, text: str, sender: str = SMARTLIST) -> Kind:
    raw = ANSWER.format(sender=sender, subject=subject, text=text)
    report, _ = classify_mail(raw.replace("\n", "\r\n").encode())
    return report.kind


@pytest.mark.parametrize(
    ("subject", "text"),
    [
        ("CONFIRM s120619513514836", CONFIRM),
        ("CONFIRM u120619513514837", CONFIRM.replace("added to", "deleted from")),
        ("unsuccessful unsubscribe request", UNSUBSCRIBE_FAILED),
    ],
)
def test_smartlists_answers_to_a_command_are_no_bounce(subject: str, text: str) -> None:
    assert _report(subject, text) is not Kind.BOUNCE


def test_the_same_text_under_a_bounces_subject_stays_a_bounce() -> None:
    # counter-example: the words "the following address" under an MTA's own subject
    kind = _report("Undelivered Mail Returned to Sender", UNSUBSCRIBE_FAILED,
                   "MAILER-DAEMON@mx.example.net")  # fmt: skip
    assert kind is Kind.BOUNCE


def test_a_confirm_word_inside_another_subject_changes_nothing() -> None:
    # counter-example: "confirm s1" not the whole subject (SmartList's is CONFIRM <cookie>)
    kind = _report("Delivery failure: please confirm s1 order", UNSUBSCRIBE_FAILED,
                   "MAILER-DAEMON@mx.example.net")  # fmt: skip
    assert kind is Kind.BOUNCE


@pytest.mark.parametrize(
    ("subject", "text", "sender"),
    [
        # the help answer (a help command; and auto_help's answer to mail with no command)
        ("archive retrieval info", "This archive server knows the following commands:\n\n"
         "get filename ...\nls directory ...\n", SMARTLIST),
        ("Re: Newsletter 5", "\t\t\tGeneral info\n\t\t\t------------\n"
         "Subscription/unsubscription/info requests should always be sent to the -request\n"
         "address of a mailinglist.\n", SMARTLIST),
        # procbounce's notice to a member it removed
        ("You have been removed from the list",
         "Your mail address news@example.org has been removed\n"
         "from the weekly@lists.example.net mailinglist.\n"
         "It generated an excessive amount of bounced mails.\n",
         "weekly-request@lists.example.net"),
    ],
)  # fmt: skip
def test_smartlists_other_answers_stay_no_bounce(subject: str, text: str, sender: str) -> None:
    assert _report(subject, text, sender) is not Kind.BOUNCE


def test_the_smartlist_cases_are_a_committed_set() -> None:
    assert_committed_set(
        SMARTLIST_CASES, ("smartlist",), cases=(6,), rows=(6,), senders=6, split="dev"
    )
    cases = load("smartlist", SMARTLIST_CASES)
    bounces = {a: label.status for c in cases for a, label in c.failed.items() if label.status}
    assert bounces == {"members@hazel.test": 4}
    assert set(smartlist.COMMANDS) <= {case.name for case in cases}
    lists = {case.recipients[0].split("@")[0].removesuffix("-request") for case in cases}
    assert lists <= set(smartlist.LISTS)


KIND_REGARDS = "  Kind regards, Your Schleuder system."


def _verdict(list_address: str, output: str) -> tuple[str, int, str]:
    # Postfix's notice of schleuder's exit 1 as the list's pipe(8) command
    text = (
        f'Command died with status 1: "/usr/bin/schleuder work\n    {list_address}". Command'
        f" output: {output}"
    )
    raw = postfix_notice(
        list_address, output, status="5.3.0", remote=None, text=text,
        diagnostic=f"x-unix; {output}", host="mx.lists.example.net",
        sender="Mail Delivery System <MAILER-DAEMON@lists.example.net>",
    )  # fmt: skip
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


@pytest.mark.parametrize(
    ("list_address", "error", "status"),
    [
        ("members@lists.example.net",
         "Error: Only subscribed addresses may send messages to this address.", 4),
        ("secret@lists.example.net",
         "Error: Messages to this address must be encrypted conforming to OpenPGP.", 4),
        ("members-request@lists.example.net",
         "Error: Messages to this address must be encrypted and signed by the key associated"
         " with a subscribed address.", 4),
        ("digest@lists.example.net",
         "Error: Your message was too big. Allowed are up to 2KB.", 8),
    ],
)  # fmt: skip
def test_schleuders_refusals_behind_postfix_read_as_their_cause(
    list_address: str, error: str, status: int
) -> None:
    assert _verdict(list_address, error + KIND_REGARDS) == (list_address, status, "failed")


def test_another_programs_failure_behind_postfix_stays_a_system_error() -> None:
    # counter-example: a command that died with other output keeps Postfix's reading
    output = "Error: could not open the database."
    assert _verdict("members@lists.example.net", output) == (
        "members@lists.example.net",
        7,
        "failed",
    )


def test_the_schleuder_cases_are_a_committed_set() -> None:
    assert_committed_set(
        SCHLEUDER_CASES, ("schleuder",), cases=(5,), rows=(5,), senders=5, split="dev"
    )
    cases = load("schleuder", SCHLEUDER_CASES)
    bounces = {a: label.status for c in cases for a, label in c.failed.items() if label.status}
    assert bounces == {
        "members@hazel.test": 4,
        "secret@hazel.test": 4,
        "digest@hazel.test": 8,
        "members-request@hazel.test": 4,
    }
    lists = {case.recipients[0].split("@")[0].split("-")[0] for case in cases}
    assert lists <= set(schleuder.LISTS)


GNARWL_REPLY = """\
Return-Path: <>
From: Rita Moreno <rita@example.net>
To: news@example.org
X-mailer: GNARWL
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit
Subject: Re: Newsletter 1

Hello, I am on vacation until 4 January and read no mail until then.
--
Rita Moreno <rita@example.net>
"""


def test_gnarwls_vacation_reply_is_no_bounce() -> None:
    report, found = classify_mail(GNARWL_REPLY.replace("\n", "\r\n").encode())
    assert report.kind is not Kind.BOUNCE
    assert found == []


def test_the_gnarwl_cases_are_a_committed_set() -> None:
    assert_committed_set(
        GNARWL_CASES,
        ("gnarwl",),
        cases=(2,),
        rows=(2,),
        senders=2,
        split="unseen",
        statuses={None},  # an auto-reply: no bounce
    )
    cases = load("gnarwl", GNARWL_CASES)
    assert {case.recipients[0].split("@")[0] for case in cases} == set(gnarwl.USERS)
