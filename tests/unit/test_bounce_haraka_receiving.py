"""A receiving Haraka's own plugins in other MTAs' notices (issue #16, round 64), as Postfix
3.7, Exim 4.96 and Sendmail 8.17 wrote them on loopback
(``bench/bounce_accuracy/mtas/haraka_receiving_*.py``; trimmed, domains and dates changed), and
the round's case file. Measured once, 42 of the 57 rows read as labelled; the rules of round 64
(``smtp_replies.yaml``'s Haraka texts, ``mail_formats.yaml``'s folded Postfix stage) read the
other 15: Haraka's stock words for a refused sender, recipient or relaying, a duplicate header,
a sender's domain with no MX or a null MX where no stage is read, and its "plugin timeout" while
retried (7) and once the retries ran out (3).
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import HARAKA_RECEIVING_CASES
from postline.bounce.classify import classify_reply
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    FAILED_KIND,
    SENDMAIL_EXPIRED,
    WARNING_LINE_KIND,
    exim_notice,
    postfix_notice,
    sendmail_final,
)

ADDRESS = "una.ef@example.net"
MAIL = "MAIL FROM command"
RCPT = "RCPT TO command"
DATA = "end of DATA command"

# The receiving Haraka's refusals (its plugins' stock messages), the command they answer, and
# their labels.
REFUSALS = [
    ("550 I cannot deliver mail for <una.ef@example.net>", RCPT, 4),
    ("550 news@example.org That sender cannot send mail here", MAIL, 4),
    ("550 una.ef@example.net That recipient is not allowed", RCPT, 4),
    ("550 No MX for your FROM address", MAIL, 4),
    ("550 5.7.27 Null MX: gone.example does not send mail", MAIL, 4),
    ("550 Only one Subject header allowed. See RFC 5322, Section 3.6", DATA, 4),
    ("550 Too many received headers - possible mail loop", DATA, 7),
    ("550 Message too big!", MAIL, 8),
]
# Its temporary refusals at every try: the reply, its command, the warning's label and the
# final notice's.
DEFERRALS = [
    ("450 Temp. resolver error (ESERVFAIL)", MAIL, 4, 4),
    ("450 plugin timeout (C378A9DE-227C-4DA1-9D69-C54DF1BAAB61.1)", DATA, 7, 3),
    ("451 4.7.1 Greylisted. Please come back later.", RCPT, 4, 4),
]


def _verdict(raw: str) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw.replace("\n", "\r\n").encode())
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


def _postfix(reply: str, command: str, action: str, status: str) -> str:
    kind = WARNING_LINE_KIND if action == "delayed" else FAILED_KIND
    return postfix_notice(ADDRESS, reply, status=status, kind=kind, stage=command)


def _exim_stage(command: str) -> str:
    stage = {MAIL: "MAIL FROM:<news@example.org>", RCPT: "RCPT TO:<una.ef@example.net>"}
    return stage.get(command, "end of data")


def _status(reply: str) -> str:
    code = reply.split()[1]
    return code if code[0] in "45" and "." in code else f"{reply[0]}.0.0"


@pytest.mark.parametrize(("reply", "command", "status"), REFUSALS)
def test_the_receiving_harakas_refusals_in_postfixs_notices(
    reply: str, command: str, status: int
) -> None:
    raw = _postfix(reply, command, "failed", _status(reply))
    assert _verdict(raw) == ("una.ef@example.net", status, "failed")


@pytest.mark.parametrize(("reply", "command", "status"), REFUSALS)
def test_the_same_in_exims_notices(reply: str, command: str, status: int) -> None:
    raw = exim_notice(ADDRESS, reply, after=_exim_stage(command))
    assert _verdict(raw) == ("una.ef@example.net", status, "failed")


@pytest.mark.parametrize(("reply", "command", "warning", "final"), DEFERRALS)
def test_its_deferrals_in_postfixs_warning_and_final_notice(
    reply: str, command: str, warning: int, final: int
) -> None:
    code = _status(reply)
    delayed = _verdict(_postfix(reply, command, "delayed", code))
    assert delayed == ("una.ef@example.net", warning, "deferred")
    assert _verdict(_postfix(reply, command, "failed", code)) == ("una.ef@example.net", final,
                                                                 "failed")  # fmt: skip


@pytest.mark.parametrize(("reply", "command", "warning", "final"), DEFERRALS)
def test_its_deferrals_in_exims_final_notice_after_the_retry_timeout(
    reply: str, command: str, warning: int, final: int
) -> None:
    raw = exim_notice(ADDRESS, reply, after=_exim_stage(command), expired=True)
    assert _verdict(raw) == ("una.ef@example.net", final, "failed")


@pytest.mark.parametrize(("reply", "command", "warning", "final"), DEFERRALS)
def test_its_deferrals_in_sendmails_final_notice_under_its_own_4_4_7(
    reply: str, command: str, warning: int, final: int
) -> None:
    sent = ">>> MAIL From:<news@example.org> SIZE=563" if command == MAIL else ">>> DATA"
    session = f"{sent}\n<<< {reply}\n<una.ef@example.net>... Deferred: {reply}\n{SENDMAIL_EXPIRED}"
    raw = sendmail_final(ADDRESS, reply, session, status="4.4.7", actual=True)
    assert _verdict(raw) == ("una.ef@example.net", final, "failed")


def test_a_postfix_stage_folded_over_two_lines_is_read() -> None:
    # Postfix folds "(in reply to" / "MAIL FROM command)" over two lines when the reply is
    # long: the stage (MAIL, a refusal of the sender) is read all the same.
    reply = "550 news@example.org Not from this one, thank you very much"
    raw = postfix_notice(ADDRESS, reply, status="5.0.0", stage=MAIL)
    raw = raw.replace(" (in reply to MAIL", " (in reply to\n    MAIL")
    assert "(in reply to\n" in raw
    assert _verdict(raw) == ("una.ef@example.net", 4, "failed")


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 news@example.org That sender cannot send mail here", "5.0.0"),
        ("550 No MX for your FROM address", "5.0.0"),
        ("550 5.7.27 Null MX: gone.example does not send mail", "5.7.27"),
    ],
)
def test_its_refusals_of_the_sender_in_a_sending_sendmails_transcript(
    reply: str, status: str
) -> None:
    # Sendmail's transcript of a refused MAIL FROM names no recipient ("554 5.0.0 Service
    # unavailable" follows), so no stage is read with it: Haraka's words say it.
    session = (
        f">>> MAIL From:<news@example.org> SIZE=363\n<<< {reply}\n554 5.0.0 Service unavailable"
    )
    raw = sendmail_final(ADDRESS, reply, session, status=status, actual=True)
    assert _verdict(raw) == ("una.ef@example.net", 4, "failed")


@pytest.mark.parametrize(
    "reply",
    [
        "550 I cannot deliver mail for <una.ef@example.net>",
        "550 una.ef@example.net That recipient is not allowed",
    ],
)
def test_its_refusals_at_rcpt_in_a_sending_sendmails_pipelined_transcript(reply: str) -> None:
    # Sendmail's own "550 5.1.1 ... User unknown" after the receiver's words is Sendmail's.
    session = (
        ">>> DATA\n"
        f"<<< {reply}\n"
        "550 5.1.1 <una.ef@example.net>... User unknown\n"
        "<<< 503 RCPT required first"
    )
    raw = sendmail_final(ADDRESS, reply, session, status="5.1.1", actual=True)
    assert _verdict(raw) == ("una.ef@example.net", 4, "failed")


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        # a recipient's domain with a null MX, and Sendmail's 5.7.27 for it, stay the
        # destination's (7), and so does a recipient domain with no MX
        ((556, "5.1.10", "556 5.1.10 Recipient address has null MX"), "not-accept"),
        ((550, "5.7.27", "550 5.7.27 Host does not accept mail"), "not-accept"),
        ((550, "", "550 No MX found for example.net"), "not-accept"),
        # a recipient that does not exist keeps its words
        (
            (550, "5.1.1", "550 5.1.1 <u@example.net>: Recipient address rejected: User unknown"),
            "user-unknown",
        ),
        # a temporary failure that names its cause keeps it
        ((452, "4.2.2", "452 4.2.2 Mailbox full, plugin timeout"), "mailbox-full"),
    ],
)
def test_counter_examples_keep_their_reading(reply: tuple[int, str, str], reason: str) -> None:
    assert classify_reply(*reply).reason == reason


def test_the_round_64_case_file_is_a_committed_set() -> None:
    assert_committed_set(
        HARAKA_RECEIVING_CASES,
        ("haraka_receiving_postfix", "haraka_receiving_exim", "haraka_receiving_sendmail"),
        cases=(14, 14, 14),
        rows=(19, 19, 19),
        delayed=(5, 5, 5),
        senders=42,
    )
