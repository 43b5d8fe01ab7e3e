"""Postfix's delivery status notices as the bounce tests build them around a receiving
server's reply: one notice captured on loopback (trimmed, domains and dates changed) with the
recipient, the reply, the stage it answered and the notice's kind left open.
"""

from __future__ import annotations

FAILED_SUBJECT = "Undelivered Mail Returned to Sender"
DELAYED_SUBJECT = "Delayed Mail (still being retried)"
FAILED_INTRO = """I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below."""
_WARNING_BANNER = """####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 0 hour(s).
"""
DELAYED_INTRO = _WARNING_BANNER + "It will be retried until it is 0 hour(s) old."
# The one-line warning text of the qpsmtpd and Sendmail-checks rounds' Postfix notices.
WARNING_LINE = "This is a warning only; the mail system will keep trying to deliver it."

# (subject, introduction, Action) of each kind of notice; a queue lifetime set in days shows
# in the warning's last line.
FAILED_KIND = (FAILED_SUBJECT, FAILED_INTRO, "failed")
DELAYED_KIND = (DELAYED_SUBJECT, DELAYED_INTRO, "delayed")
DELAYED_DAYS_KIND = (
    DELAYED_SUBJECT,
    _WARNING_BANNER + "It will be retried until it is 0 day(s) old.",
    "delayed",
)

# Postfix folds the notice's text at 76 columns: the stage words carry their fold.
RCPT_STAGE = "RCPT\n    TO command"
DATA_STAGE = "end of\n    DATA command"

POSTFIX = """\
Return-Path: <>
Received: by mx.example.org (Postfix)
\tid 9D887266002; Sun,  6 Dec 2026 21:19:14 +0000 (UTC)
Date: Sun,  6 Dec 2026 21:19:14 +0000 (UTC)
From: Mail Delivery System <MAILER-DAEMON@example.org>
Subject: {subject}
To: news@example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="3A50F266A09.1796586794/mx.example.org"
Content-Transfer-Encoding: 8bit
Message-Id: <20261206211914.9D887266002@mx.example.org>

This is a MIME-encapsulated message.

--3A50F266A09.1796586794/mx.example.org
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mx.example.org.

{intro}

<{recipient}>: host 192.0.2.25[192.0.2.25] said: {reply} (in reply to {stage})

--3A50F266A09.1796586794/mx.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
X-Postfix-Queue-ID: 3A50F266A09
X-Postfix-Sender: rfc822; news@example.org
Arrival-Date: Sun,  6 Dec 2026 21:18:04 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; 192.0.2.25
Diagnostic-Code: smtp; {reply}

--3A50F266A09.1796586794/mx.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Newsletter <news@example.org>
To: {recipient}
Subject: Newsletter 8

--3A50F266A09.1796586794/mx.example.org--
"""


def postfix_kind(*, delayed: bool) -> tuple[str, str, str]:
    """The subject, introduction and Action of Postfix's warning or final notice."""
    return DELAYED_KIND if delayed else FAILED_KIND


def postfix_notice(
    recipient: str, reply: str, *, status: str, delayed: bool = False, stage: str = RCPT_STAGE
) -> str:
    """Postfix's notice of ``reply``, answered at ``stage`` for ``recipient``."""
    subject, intro, action = postfix_kind(delayed=delayed)
    return POSTFIX.format(subject=subject, intro=intro, recipient=recipient, reply=reply,
                          stage=stage, action=action, status=status)  # fmt: skip
