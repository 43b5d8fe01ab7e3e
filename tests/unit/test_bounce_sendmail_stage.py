"""The stage of a reply in Sendmail's notices (issue #16, house work after round 68).

When the receiving server refuses MAIL FROM, Sendmail's transcript shows the command and
its reply (">>> MAIL From:<s@x> SIZE=360" / "<<< 553 ...") followed only by its own line
("501 5.6.0 Data format error"), no recipient's; the recipient's report gives the reply alone
("Diagnostic-Code: SMTP; 553 ..."). Postfix ("in reply to MAIL FROM command") and Exim
("after MAIL FROM:<s@x>") name the stage in the diagnostic itself. The parser reads the
transcript's command for a report whose diagnostic is one of its replies, so a refusal of
the sender reads as one whatever its words say of an address.
"""

from __future__ import annotations

import pytest

from postline.bounce.mail import parse_bounce
from postline.bounce.verdicts import classify_mail
from tests.mta_notices_support import exim_notice, postfix_notice, sendmail_final

RECIPIENT = "una.ef@example.net"
SENDER = "news@example.org"

# Refusals of the sender whose words alone read as another reason (a missing mailbox, or
# none): answered to MAIL they refuse the sender (4), as in Postfix's and Exim's notices.
REFUSALS = [
    ("553 5.1.1 <news@example.org>... No such user", "5.1.1"),
    ("550 5.0.0 <news@example.org>... User unknown", "5.0.0"),
    ("550 5.0.0 <news@example.org>... Go away", "5.0.0"),
]


def _sendmail(reply: str, status: str) -> bytes:
    session = f">>> MAIL From:<{SENDER}> SIZE=360\n<<< {reply}\n501 5.6.0 Data format error"
    return sendmail_final(RECIPIENT, reply, session, status=status).encode()


@pytest.mark.parametrize(("reply", "status"), REFUSALS)
def test_a_refused_mail_from_in_sendmails_transcript_refuses_the_sender(
    reply: str, status: str
) -> None:
    raw = _sendmail(reply, status)
    assert parse_bounce(raw).recipients[0].command == "MAIL"
    _, verdicts = classify_mail(raw)
    assert [(v.recipient, v.status) for v in verdicts] == [(RECIPIENT, 4)]


@pytest.mark.parametrize(("reply", "status"), REFUSALS)
def test_postfix_and_exim_read_the_same_refusal_by_the_stage_they_name(
    reply: str, status: str
) -> None:
    postfix = postfix_notice(RECIPIENT, reply, status=status, stage="MAIL FROM command")
    exim = exim_notice(RECIPIENT, reply, after=f"MAIL FROM:<{SENDER}> SIZE=360")
    for raw in (postfix.encode(), exim.encode()):
        _, verdicts = classify_mail(raw)
        assert [v.status for v in verdicts] == [4]


def test_sendmails_diagnostic_code_keeps_a_multi_line_replys_first_line() -> None:
    # Courier's reply to MAIL FROM of an unknown sender domain, as Sendmail 8.17 reported it
    # (round 66's courier_receiving_sendmail notices): the report's Diagnostic-Code has only
    # the reply's first line, the transcript both.
    first = "517-Domain does not exist: gone.example."
    session = (
        f">>> MAIL From:<{SENDER}> SIZE=362\n<<< {first}\n"
        "<<< 517 Invalid domain, see <URL:https://www.ietf.org/rfc/rfc1035.txt>\n"
        "554 5.0.0 Service unavailable"
    )
    raw = sendmail_final(RECIPIENT, first, session, status="5.0.0").encode()
    assert parse_bounce(raw).recipients[0].command == "MAIL"


def test_a_reply_to_rcpt_keeps_the_recipients_stage() -> None:
    # The transcript's RCPT answer is followed by the recipient's line: still RCPT, a missing
    # mailbox (2).
    reply = f"550 5.1.1 <{RECIPIENT}>... User unknown"
    session = (
        f">>> MAIL From:<{SENDER}> SIZE=360\n<<< 250 2.1.0 <{SENDER}>... Sender ok\n"
        f">>> RCPT To:<{RECIPIENT}>\n<<< {reply}\n{reply}"
    )
    raw = sendmail_final(RECIPIENT, reply, session, status="5.1.1").encode()
    assert parse_bounce(raw).recipients[0].command == "RCPT"
    _, verdicts = classify_mail(raw)
    assert [v.status for v in verdicts] == [2]
