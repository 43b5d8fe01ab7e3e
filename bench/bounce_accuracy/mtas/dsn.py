"""An MTA's delivery status notification for a list's member, as a list manager's bounce
handling is handed it (rounds 52 and 58: Sympa's bounce address, SmartList's ``-request``):
the member's mailbox is unknown (``550 5.1.1``) at ``mx.walnut.test``."""

from __future__ import annotations

MAILER_DAEMON = "MAILER-DAEMON@mx.walnut.test"
REPLY = "550 5.1.1 <{member}>: Recipient address rejected: User unknown"

MEMBER_DSN = """\
From: {sender}
To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn.{number}@mx.walnut.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"

--dsn
Content-Type: text/plain

The mail could not be delivered to <{member}>.
{text}
--dsn
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.walnut.test

Final-Recipient: rfc822; {member}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; {reply}

--dsn--
"""


def member_dsn(
    member: str, to: str, number: int, *, sender: str = MAILER_DAEMON, quoted: bool = False
) -> str:
    """The notice (LF lines) that ``member``'s mail failed, sent to ``to`` from ``sender``,
    its Message-ID numbered ``number``; with ``quoted``, its text part quotes the server's
    reply as well as its delivery-status part."""
    reply = REPLY.format(member=member)
    text = f"\n{reply}\n" if quoted else ""
    return MEMBER_DSN.format(
        sender=sender, to=to, number=number, member=member, text=text, reply=reply
    )
