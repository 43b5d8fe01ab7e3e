"""Mail server products' and gateways' own replies (issue #16, round 72): hMailServer's SMTP
server, Zimbra's LMTP server and Momentum (SparkPost's MTA), as their sources and manuals give
them (``bench/bounce_accuracy/published_replies.yaml``, the rows with ``round: 72``). Round 72
measured them once (55.9 %); its rules read the causes their words name. Each case here fails
without its rule; the guards below keep what the same words' neighbours meant before.
"""

from __future__ import annotations

import pytest

from postline.bounce.classify import classify_reply
from postline.bounce.mail.replies import enhanced_status, reply_code


def _status(reply: str) -> int | None:
    return classify_reply(reply_code(reply), enhanced_status(reply), reply).status


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        # an alias or a distribution list switched off: the address takes no mail (2)
        ("550 Alias is not active.", 2),
        ("550 Distribution list is not active.", 2),
        ("550 5.2.1 <team@example.org>: alias is no longer active", 2),
        # the destination's own state (7): its domain switched off, a message it could not
        # store, a mailbox its cluster keeps on another server, its resources spent
        ("550 Domain has been disabled.", 7),
        ("550 The domain has been deactivated", 7),
        ("554 Your message was received but it could not be saved. Please retry later.", 7),
        ("451 Rejected - No data saved.", 7),
        ("450 4.2.0 Mailbox is not on this server", 7),
        ("421 4.3.4 allocated resources exceeded", 7),
        ("451 4.3.0 Resource limitations, please try later", 7),
        # a list's posting rights and the sender's domain: refusals of the sender (4)
        ("550 Not authorized owner.", 4),
        ("550 Not authorized domain.", 4),
        ("550 Not authorised sender", 4),
        ("550 Sender domain does not have any MX records.", 4),
        ("550 5.7.1 Sender domain has no MX record", 4),
        # relaying not allowed for this sender and recipient (4)
        ("550 Delivery is not allowed to this address.", 4),
        # the client's HELO, a URI blocklist (4)
        ("550 The host name specified in HELO does not match IP address.", 4),
        ("501 EHLO Invalid domain address.", 4),
        ("501 HELO Invalid domain address.", 4),
        ("554 Rejected by SURBL.", 4),
        ("554 Rejected by URIBL.", 4),
        # the recipient's address fails the syntax check (9)
        ("550 A valid address is required.", 9),
        ("553 A valid email address is required", 9),
        # a server that takes mail only over TLS, whatever its X.2.2 says (7)
        ("451 4.2.2 Server accepts messages only on TLS connection", 7),
        ("550 5.2.2 This server accepts mail only over TLS", 7),
        # a line over RFC 2822's limit is the message's format, not its size (4)
        ("550 5.6.0 Body line too long (see RFC2822 section 3.5)", 4),
        ("550 5.6.0 Header line too long (see RFC2822 section 3.5)", 4),
        # the client's sessions or a message's recipients over the server's limit (4)
        ("421 4.4.5 Service unavailable, concurrency limit reached", 4),
        ("452 4.5.3 Service unavailable, recipients per message limit reached", 4),
    ],
)
def test_the_words_of_mail_server_products_name_their_cause(reply: str, status: int) -> None:
    assert _status(reply) == status


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        # a disabled account, a full mailbox and a message too large read as before
        ("550 Account is not active.", 2),
        ("452 4.2.2 Over quota", 5),
        ("552 5.2.2 Mailbox full", 5),
        ("552 5.3.4 Message size exceeds fixed maximum message size", 8),
        ("552 5.3.4 Error: message file too big", 8),
        # a long line without RFC 5322's words is still read as a size (Exim's wording)
        ("550 5.3.4 line too long", 8),
        # a recipient's own unknown address is no sender's refusal
        ("550 5.1.1 <u@example.org>: Recipient address rejected: User unknown", 2),
    ],
)
def test_neighbouring_words_keep_their_reading(reply: str, status: int) -> None:
    assert _status(reply) == status
