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

from bench.bounce_accuracy.mtas.cases import COURIER_RECEIVING_CASES
from postline.bounce.classify import classify_reply
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    FAILED_KIND,
    WARNING_LINE_KIND,
    postfix_notice,
    sendmail_notice,
    sendmail_report,
)

ADDRESS = "una.ef@example.net"
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
    kind = FAILED_KIND if action == "failed" else WARNING_LINE_KIND
    return postfix_notice(ADDRESS, reply, status=status, kind=kind, stage=command)


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
    first = "517-Domain does not exist: gone.example."
    second = "517 Invalid domain, see <URL:https://www.ietf.org/rfc/rfc1035.txt>"
    # Sendmail's report of a refused sender names no Remote-MTA.
    raw = sendmail_notice(
        f"... while talking to [192.0.2.25]:\n>>> MAIL From:<news@gone.example> SIZE=361\n"
        f"<<< {first}\n<<< {second}\n554 5.0.0 Service unavailable",
        [sendmail_report(ADDRESS, status="5.0.0", reply=first, remote=False, actual=ADDRESS)],
        errors=f"<{ADDRESS}>\n    (reason: {first})\n",
        sender="news@gone.example",
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
    assert_committed_set(
        COURIER_RECEIVING_CASES,
        ("courier_receiving_postfix", "courier_receiving_exim", "courier_receiving_sendmail"),
        cases=(15, 15, 15),
        rows=(18, 18, 18),
        delayed=(3, 3, 3),
        senders=45,
    )
