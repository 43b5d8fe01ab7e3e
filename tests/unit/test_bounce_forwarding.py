"""Forwarding failures made by a receiving Postfix and Sendmail, in Postfix's, Exim's and
Sendmail's notices (issue #16, round 78): a mailbox that has moved (Postfix's relocated_maps,
Sendmail's FEATURE(`redirect')) and forwarding loops the MTAs detect themselves, as
``bench/bounce_accuracy/mtas/forwarding_*.py`` made them on loopback (trimmed, domains and
dates changed), and the round's case file. Round 78 measured them once (18/18) and wrote no
rule: these tests hold what the classifier answers, a move 6 and a loop 7 as the shared
corpus labels them. Round 81 added qmail's and Courier's own notices of a forwarding loop (a
``.qmail`` or ``.courier`` file forwarding back round, ``forwarding_qmail.py`` and
``forwarding_courier.py``), measured once (4/4), no rule: a loop 7 there too; and round 78's
SRS forward with Exim and Sendmail sending (4/4, the forwarder's notice as with Postfix).
"""

from __future__ import annotations

from bench.bounce_accuracy.mtas.cases import FORWARDING_CASES
from postline.bounce.classify import classify_reply
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    DATA_STAGE,
    exim_notice,
    postfix_notice,
    sendmail_notice,
    sendmail_report,
)

ADDRESS = "una.ef@example.net"
NEW = "una.ef@example.com"
RELOCATED = f"550 5.1.6 <{ADDRESS}>: Recipient address rejected: User has moved to {NEW}"
REDIRECT = f"551 5.1.1 User has moved; please try <{NEW}>"


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def test_postfixs_relocated_refusal_is_a_move_in_each_senders_notice() -> None:
    assert _verdict(postfix_notice(ADDRESS, RELOCATED, status="5.1.6")) == (ADDRESS, 6, "failed")
    assert _verdict(exim_notice(ADDRESS, RELOCATED)) == (ADDRESS, 6, "failed")
    transcript = f"... while talking to [192.0.2.25]:\n>>> RCPT To:<{ADDRESS}>\n<<< {RELOCATED}"
    report = sendmail_report(ADDRESS, status="5.1.6", reply=RELOCATED)
    errors = f"<{ADDRESS}>\n    (reason: {RELOCATED})\n"
    assert _verdict(sendmail_notice(transcript, [report], errors=errors)) == (ADDRESS, 6, "failed")


def test_postfixs_own_notice_of_an_alias_to_a_moved_mailbox_is_a_move() -> None:
    # The alias is taken; local(8)'s forward meets relocated_maps: Postfix's own words.
    raw = postfix_notice(
        ADDRESS, "", status="5.1.6", remote=None, text=f"User has moved to {NEW}",
        diagnostic=f"X-Postfix; User has moved to {NEW}",
    )  # fmt: skip
    assert _verdict(raw) == (ADDRESS, 6, "failed")


def test_sendmails_redirect_is_a_move_whatever_its_5_1_1() -> None:
    actual = f'"551 User has moved; please try "<{NEW}>'
    report = sendmail_report(ADDRESS, status="5.1.1", remote=False, actual=actual)
    errors = f"{NEW}.REDIRECT\n    (expanded from: <{ADDRESS}>)\n"
    raw = sendmail_notice(REDIRECT, [report], errors=errors)
    assert _verdict(raw) == (ADDRESS, 6, "failed")
    assert classify_reply(551, "5.1.1", REDIRECT).status == 6


def test_forwarding_loops_are_the_receiving_servers_error() -> None:
    loop = f"mail forwarding loop for {ADDRESS}"
    own = postfix_notice(ADDRESS, "", status="5.4.6", remote=None, text=loop,
                         diagnostic=f"X-Postfix; {loop}")  # fmt: skip
    assert _verdict(own) == (ADDRESS, 7, "failed")
    hops = "554 5.4.0 Error: too many hops"
    assert _verdict(postfix_notice(ADDRESS, hops, status="5.4.0", stage=DATA_STAGE)) == (
        ADDRESS, 7, "failed",
    )  # fmt: skip
    sendmail_hops = "554 5.4.6 Too many hops 26 (25 max): from <news@example.org> via localhost,"
    sendmail_hops += f" to <{ADDRESS}>"
    report = sendmail_report(ADDRESS, status="5.4.6", reply="554 5.4.6 Too many hops", remote=False)
    errors = f"<{ADDRESS}>\n    (reason: 554 5.4.6 Too many hops)\n"
    raw = sendmail_notice(sendmail_hops, [report], errors=errors)
    assert _verdict(raw) == (ADDRESS, 7, "failed")


QMAIL_LOOP = f"""\
Return-Path: <>
Date: 7 Dec 2026 11:08:39 -0000
From: MAILER-DAEMON@mx.example.net
To: news@example.org
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{ADDRESS}>:
This message is looping: it already has my Delivered-To line. (#5.4.6)

--- Below this line is a copy of the message.

Return-Path: <news@example.org>
Delivered-To: una.fw@example.net
Delivered-To: {ADDRESS}
From: Newsletter <news@example.org>
To: {ADDRESS}
Subject: Newsletter 1

Hello.
"""

COURIER_LOOP = f"""\
Return-Path: <>
From: Courier mail server at mx.example.net <@>
To: news@example.org
Subject: NOTICE: mail delivery status.
Mime-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
    boundary="=_courier_0"
Date: Mon, 07 Dec 2026 11:08:56 +0000

This is a MIME-formatted message.

--=_courier_0
Content-Type: text/plain; charset="utf-8"

This is a delivery status notification from mx.example.net,
running the Courier mail server, version 1.0.16.

                           UNDELIVERABLE MAIL

Your message to the following recipients cannot be delivered:

<{ADDRESS}>:
 <<< Mail loop - already have my Delivered-To: header.

--=_courier_0
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {ADDRESS}
Action: failed
Original-Recipient: rfc822; {ADDRESS}
Status: 5.0.0
Diagnostic-Code: unknown; Mail loop - already have my Delivered-To: header.

--=_courier_0
Content-Type: message/rfc822

Delivered-To: una.fw@example.net
Delivered-To: {ADDRESS}
From: Newsletter <news@example.org>
To: {ADDRESS}
Subject: Newsletter 1

Hello.

--=_courier_0--
"""


def test_qmails_and_couriers_own_loop_notices_are_the_receiving_servers_error() -> None:
    # Round 81: qmail-local's and courierlocal's own Delivered-To: loop words, a loop 7.
    assert _verdict(QMAIL_LOOP) == (ADDRESS, 7, "failed")
    assert _verdict(COURIER_LOOP) == (ADDRESS, 7, "failed")


MODULES = ("forwarding_postfix", "forwarding_exim", "forwarding_sendmail",
           "forwarding_srs_postfix", "forwarding_qmail", "forwarding_courier",
           "forwarding_srs_exim", "forwarding_srs_sendmail")  # fmt: skip


def test_the_round_78_and_81_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        FORWARDING_CASES,
        MODULES,
        cases=(6, 6, 6, 2, 2, 2, 2, 2),
        rows=(6, 6, 6, 2, 2, 2, 2, 2),
        delayed=(0, 0, 0, 0, 0, 0, 0, 0),
        senders=28,
        split="unseen",
        statuses=(2, 5, 6, 7, 99),
    )
