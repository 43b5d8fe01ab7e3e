"""Notices of the sending MTA's own failures that are no reply of a remote server (issue #16,
round 40): a next hop that is the sending host itself, a mail loop, TLS required and not
offered, a next hop whose name does not resolve, and two remote replies no round had made
(authentication required on port 25, 501 5.1.3), as Postfix, Exim and Sendmail wrote them on
loopback in round 40 (domains and dates changed); each test names the behaviour it holds.
"""

from __future__ import annotations

import pytest

from postline.bounce.classify import classify_failure, classify_reply
from postline.bounce.verdicts import classify_mail
from tests.mta_notices_support import exim_notice


def _exim(address: str, said: str) -> bytes:
    """Exim 4.96's failure notice as it wrote it for a router's own failure: the reason under
    the address, a report with Status 5.0.0 and no diagnostic."""
    notice = exim_notice(address, said, own=True, host="mx.example.net")
    return notice.replace("\n", "\r\n").encode()


def test_exims_route_to_the_local_host_is_a_receiving_servers_error() -> None:
    # The domain's route (its MX) names the sending host itself: the destination is
    # misconfigured, the address live (7), not "other".
    _, verdicts = classify_mail(
        _exim("tomas.reed@example.org", "remote host address is the local host")
    )
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("tomas.reed@example.org", 7, "failed")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "remote host address is the local host",  # Exim, a manual route (self = fail)
        "lowest numbered MX record points to local host",  # Exim, a DNS lookup's MX
        "553 5.3.5 mx.example.net. config error: mail loops back to me (MX problem?)",  # Sendmail
        "554 5.4.0 Error: too many hops",  # Postfix, a next hop that is itself
        "mail forwarding loop for vera.lang@example.net",  # Postfix's local(8), Delivered-To
        "554 5.4.6 Too many hops 31 (25 max): from <news@example.test> via localhost, to "
        "<vera.lang@example.org>",  # Sendmail
    ],
)
def test_a_next_hop_that_is_the_sender_or_a_loop_is_a_receiving_servers_error(text: str) -> None:
    code = int(text[:3]) if text[:3].isdigit() else 0
    got = classify_failure(code, "5.0.0" if code == 0 else "", text, action="failed")
    assert got.status == 7


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.1.1 <ann@example.org>: user unknown on local host",
        "550 5.1.1 <ann@example.org>... User unknown (no such user on the local host)",
    ],
)
def test_the_local_host_alone_says_no_loop(reply: str) -> None:
    # Counter-example: "local host" in an unknown user's reply keeps the reply's own reason.
    assert classify_reply(550, "5.1.1", reply[10:]).status == 2


def test_authentication_required_on_port_25_and_a_bad_address_syntax() -> None:
    assert classify_reply(530, "5.7.0", "Authentication required").status == 7
    assert classify_reply(501, "5.1.3", "Bad recipient address syntax").status == 9
