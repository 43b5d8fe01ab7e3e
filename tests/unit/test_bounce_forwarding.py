"""Forwarding failures made by a receiving Postfix and Sendmail, in Postfix's, Exim's and
Sendmail's notices (issue #16, round 78): a mailbox that has moved (Postfix's relocated_maps,
Sendmail's FEATURE(`redirect')) and forwarding loops the MTAs detect themselves, as
``bench/bounce_accuracy/mtas/forwarding_*.py`` made them on loopback (trimmed, domains and
dates changed), and the round's case file. Round 78 measured them once (18/18) and wrote no
rule: these tests hold what the classifier answers, a move 6 and a loop 7 as the shared
corpus labels them.
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


def test_the_round_78_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        FORWARDING_CASES,
        ("forwarding_postfix", "forwarding_exim", "forwarding_sendmail", "forwarding_srs_postfix"),
        cases=(6, 6, 6, 2),
        rows=(6, 6, 6, 2),
        delayed=(0, 0, 0, 0),
        senders=20,
        split="unseen",
        statuses=(2, 5, 6, 7, 99),
    )
