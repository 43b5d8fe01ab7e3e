"""SPF temporary and permanent errors run for real (issue #16, round 53): postfix-policyd-spf-
python behind a receiving Postfix, its answers as the sending Postfix and Sendmail wrote them on
loopback (``bench/bounce_accuracy/mtas/spf_*.py``; trimmed, domains and dates changed), and the
round's case file. Round 53 measured the set once (15 of 15) and wrote no rule: these tests
hold what the classifier reads today. An SPF temporary error is a DNS failure of the SENDER's
domain at the receiver: the receiver's authentication check (4), also after the sender gave up
(with Sendmail's own Status 4.4.7), never the recipient's unknown host (1); a permanent error
is a refusal (4) also under Sendmail's own "550 5.1.1 ... User unknown" in its transcript.
"""

from __future__ import annotations

import pytest

from bench.bounce_accuracy.mtas.cases import SPF_CASES, load
from postline.bounce.classify import classify_failure
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    SENDMAIL_EXPIRED,
    SENDMAIL_STILL_TRYING,
    sendmail_notice,
    sendmail_report,
)

TEMPORARY = (
    "450 4.7.24 <{rcpt}>: Recipient address rejected: Message deferred due to: SPF Temporary "
    "Error: DNS {dns} Please see "
    "http://www.openspf.net/Why?s=mfrom;id=news@lists.example.org;ip=192.0.2.46;r=example.net"
)
SERVFAIL = (
    "All nameservers failed to answer the query lists.example.org. IN TXT: Server 192.0.2.53 "
    "UDP port 53 answered SERVFAIL."
)
TIMEOUT = (
    "The resolution lifetime expired after 20.114 seconds: Server 192.0.2.53 UDP port 53 "
    "answered The DNS operation timed out.; Server 192.0.2.53 UDP port 53 answered The DNS "
    "operation timed out.."
)
PERMANENT = (
    "550 5.7.24 <{rcpt}>: Recipient address rejected: Message rejected due to: SPF Permanent "
    "Error: Invalid IP4 CIDR length: ip4:192.0.2.46/40. Please see "
    "http://www.openspf.net/Why?s=mfrom;id=news@info.example.org;ip=192.0.2.46;r=example.net"
)

RCPT = "gero.quy@example.net"


def _sendmail(reply: str, *, final: bool, status: str, own: str = "") -> bytes:
    """Sendmail's final notice or warning of ``reply`` to the RCPT it pipelined before DATA,
    and its ``own`` words for it (its "Deferred" line)."""
    own = own or f"<{RCPT}>... Deferred: {reply}"
    session = (
        f"... while talking to [192.0.2.25]:\n>>> DATA\n<<< {reply}\n{own}\n"
        "<<< 554 5.5.1 Error: no valid recipients\n"
        + (SENDMAIL_EXPIRED if final else SENDMAIL_STILL_TRYING)
    )
    action = "failed" if final else "delayed"
    report = sendmail_report(RCPT, status=status, reply=reply, action=action)
    # Sendmail cuts the reason of a long reply to 100 characters
    errors = f"<{RCPT}>\n    (reason: {reply[:100]}...)\n" if final else None
    text = sendmail_notice(session, [report], errors=errors, sender="news@lists.example.org")
    return text.replace("\n", "\r\n").encode()


def _verdict(raw: bytes) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw)
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


@pytest.mark.parametrize("dns", [SERVFAIL, TIMEOUT])
def test_an_spf_temporary_error_is_the_receivers_authentication_check(dns: str) -> None:
    reply = TEMPORARY.format(rcpt=RCPT, dns=dns)
    found = classify_failure(450, "4.7.24", reply, action="delayed")
    assert (found.status, found.permanent) == (4, False)
    warning = _sendmail(reply, final=False, status="4.7.24")
    assert _verdict(warning) == (RCPT, 4, "deferred")


@pytest.mark.parametrize("dns", [SERVFAIL, TIMEOUT])
def test_an_spf_temporary_error_after_the_lifetime_stays_4_under_sendmails_4_4_7(
    dns: str,
) -> None:
    final = _sendmail(TEMPORARY.format(rcpt=RCPT, dns=dns), final=True, status="4.4.7")
    assert _verdict(final) == (RCPT, 4, "failed")


def test_an_spf_permanent_error_is_a_refusal_under_sendmails_own_user_unknown() -> None:
    reply = PERMANENT.format(rcpt=RCPT)
    own = f"550 5.1.1 <{RCPT}>... User unknown"
    raw = _sendmail(reply, final=True, status="5.7.24", own=own)
    assert _verdict(raw) == (RCPT, 4, "failed")
    found = classify_failure(550, "5.7.24", reply, action="failed")
    assert found.status == 4


def test_the_spf_cases_are_a_committed_set() -> None:
    mtas = ("spf_postfix", "spf_exim", "spf_sendmail")
    assert_committed_set(SPF_CASES, mtas, cases=(5, 5, 5), rows=(7, 7, 7), senders=15, statuses={4})
    for mta in mtas:
        cases = load(mta, SPF_CASES)
        assert [case.name for case in cases] == [
            "spf-temperror-servfail-lifetime",
            "spf-temperror-silent-lifetime",
            "spf-permerror",
            "spf-permerror-two-records",
            "spf-permerror-too-many-lookups",
        ]
        # the senders' domains are the ones whose SPF lookup fails
        assert [case.sender.split("@")[1] for case in cases] == [
            "lists.sender.test",
            "mail.sender.test",
            "info.sender.test",
            "promo.sender.test",
            "deals.sender.test",
        ]
