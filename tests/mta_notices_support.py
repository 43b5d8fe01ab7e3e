"""Postfix's, Exim's and Sendmail's delivery status notices as the bounce tests build them
around a receiving server's reply: one notice of each captured on loopback (trimmed, domains
and dates changed) with the recipient, the reply, the stage it answered and the notice's kind
left open. The queue IDs, boundaries and dates are one capture's: the classifier reads none.
"""

from __future__ import annotations

FAILED_SUBJECT = "Undelivered Mail Returned to Sender"
DELAYED_SUBJECT = "Delayed Mail (still being retried)"
FAILED_INTRO = """I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below."""
# A warning's banner; the sending Postfix's delay_warning_time (0 hours in the captures)
WARNING_BANNER = """####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 0 hour(s)."""
DELAYED_INTRO = WARNING_BANNER + "\nIt will be retried until it is 0 hour(s) old."
# The one-line warning text of the qpsmtpd and Sendmail-checks rounds' Postfix notices.
WARNING_LINE = "This is a warning only; the mail system will keep trying to deliver it."

# (subject, introduction, Action) of each kind of notice; a queue lifetime set in days shows
# in the warning's last line.
FAILED_KIND = (FAILED_SUBJECT, FAILED_INTRO, "failed")
DELAYED_KIND = (DELAYED_SUBJECT, DELAYED_INTRO, "delayed")
DELAYED_DAYS_KIND = (
    DELAYED_SUBJECT,
    WARNING_BANNER + "\nIt will be retried until it is 0 day(s) old.",
    "delayed",
)
BANNER_KIND = (DELAYED_SUBJECT, WARNING_BANNER, "delayed")
WARNING_LINE_KIND = (DELAYED_SUBJECT, WARNING_LINE, "delayed")

# Postfix folds the notice's text at 76 columns: the stage words carry their fold.
RCPT_STAGE = "RCPT\n    TO command"
DATA_STAGE = "end of\n    DATA command"

POSTFIX = """\
Return-Path: <>
Received: by {host} (Postfix)
\tid 9D887266002; Sun,  6 Dec 2026 21:19:14 +0000 (UTC)
Date: Sun,  6 Dec 2026 21:19:14 +0000 (UTC)
From: {sender}
Subject: {subject}
To: news@example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="3A50F266A09.1796586794/{host}"
Content-Transfer-Encoding: 8bit
Message-Id: <20261206211914.9D887266002@{host}>

This is a MIME-encapsulated message.

--3A50F266A09.1796586794/{host}
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host {host}.

{intro}

                   The mail system

<{recipient}>: {text}

--3A50F266A09.1796586794/{host}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; {host}
X-Postfix-Queue-ID: 3A50F266A09
X-Postfix-Sender: rfc822; news@example.org
Arrival-Date: Sun,  6 Dec 2026 21:18:04 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
{remote}Diagnostic-Code: {diagnostic}

--3A50F266A09.1796586794/{host}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Newsletter <news@example.org>
To: {recipient}
Subject: Newsletter 8

--3A50F266A09.1796586794/{host}--
"""


def postfix_kind(*, delayed: bool) -> tuple[str, str, str]:
    """The subject, introduction and Action of Postfix's warning or final notice."""
    return DELAYED_KIND if delayed else FAILED_KIND


def postfix_notice(
    recipient: str,
    reply: str,
    *,
    status: str,
    kind: tuple[str, str, str] = FAILED_KIND,
    stage: str | None = RCPT_STAGE,
    remote: str | None = "192.0.2.25",
    text: str | None = None,
    diagnostic: str | None = None,
    folded: str | None = None,
    host: str = "mx.example.org",
    sender: str = "Mail Delivery System <MAILER-DAEMON@example.org>",
) -> str:
    """Postfix's notice of ``reply``, answered at ``stage`` (None: after the message, as an
    LMTP server answers) by ``remote`` for ``recipient``. ``text`` replaces the notice's line
    after the recipient (a local delivery's), ``diagnostic`` the report's Diagnostic-Code
    (``smtp; <reply>``); a local delivery has no ``remote``. ``folded`` is the reply as the
    text shows it when Postfix folded it."""
    subject, intro, action = kind
    if text is None:
        text = f"host {remote}[{remote}] said: {folded or reply}"
        if stage is not None:
            text += f" (in reply to {stage})"
    return POSTFIX.format(
        host=host, sender=sender, subject=subject, intro=intro, recipient=recipient, text=text,
        action=action, status=status, remote=f"Remote-MTA: dns; {remote}\n" if remote else "",
        diagnostic=diagnostic or f"smtp; {reply}",
    )  # fmt: skip


EXIM_FAILED_SUBJECT = "Mail delivery failed: returning message to sender"
EXIM_DELAYED_SUBJECT = "Warning: message 1xaHlC-00075e-0t delayed 0 minutes"
# Exim's words for the retry time-out, after the reply it quotes in its final notice
EXIM_EXPIRED = ": retry timeout exceeded"

EXIM = """\
Return-Path: <>
Received: from Debian-exim by {host} with local (Exim 4.96)
\tid 1xaHlW-00077P-1G
\tfor news@example.org;
\tSun, 06 Dec 2026 19:19:18 +0000
{failed}Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@{host}>
To: news@example.org
Content-Type: multipart/report; report-type=delivery-status; boundary=1796584758-eximdsn-1003
MIME-Version: 1.0
Subject: {subject}
Message-Id: <E1xaHlW-00077P-1G@{host}>
Date: Sun, 06 Dec 2026 19:19:18 +0000

--1796584758-eximdsn-1003
Content-type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

{text}
--1796584758-eximdsn-1003
Content-type: message/delivery-status

Reporting-MTA: dns; {host}

Action: {action}
Final-Recipient: rfc822;{recipient}
Status: {status}
{remote}
--1796584758-eximdsn-1003
Content-type: text/rfc822-headers

From: Newsletter <news@example.org>
To: {recipient}
Subject: Newsletter 3

--1796584758-eximdsn-1003--
"""

_EXIM_FAILED_TEXT = """\
A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    {reason}
"""
_EXIM_DELAYED_TEXT = """\
A message that you sent has not yet been delivered to one or more of its
recipients after more than 0 minutes on the queue on {host}.

The address to which the message has not yet been delivered is:

  {recipient}
    {reason}

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered. Eventually the mail delivery software will give up,
and when that happens, the message will be returned to you.
"""


def exim_notice(
    recipient: str,
    reply: str,
    *,
    after: str | None = None,
    delayed: bool = False,
    expired: bool = False,
    folded: str | None = None,
    own: bool = False,
    host: str = "mx.example.org",
) -> str:
    """Exim's final notice (or, ``delayed``, its warning) of ``reply``, answered to ``after``
    (``RCPT TO:<recipient>``), for ``recipient``; ``expired``: Exim gave up when the retry
    time ran out and says so after the reply. ``folded`` is the reply as the text shows it
    when Exim folded it. ``own``: ``reply`` is Exim's own words under the address, for a
    router's or a local delivery's failure (no remote server, no Diagnostic-Code)."""
    diagnostic = reply + (EXIM_EXPIRED if expired else "")
    if own:
        reason = diagnostic
        remote = ""
    else:
        after = after or f"RCPT TO:<{recipient}>"
        error = f"SMTP error from remote mail server after {after}:\n    {folded or diagnostic}"
        reason = f"host 192.0.2.25 [192.0.2.25]\n    {'Delay reason: ' if delayed else ''}{error}"
        remote = f"Remote-MTA: dns; 192.0.2.25\nDiagnostic-Code: smtp; {diagnostic}\n"
    template = _EXIM_DELAYED_TEXT if delayed else _EXIM_FAILED_TEXT
    return EXIM.format(
        host=host, failed="" if delayed else f"X-Failed-Recipients: {recipient}\n",
        subject=EXIM_DELAYED_SUBJECT if delayed else EXIM_FAILED_SUBJECT,
        text=template.format(host=host, recipient=recipient, reason=reason),
        action="delayed" if delayed else "failed", recipient=recipient,
        status="4.0.0" if delayed else "5.0.0", remote=remote,
    )  # fmt: skip


def exim_local_failure(recipient: str, output: str) -> str:
    """Exim's words for a local delivery to ``recipient`` that failed with ``output``."""
    return (
        "local delivery failed\n\nThe following text was generated during the delivery"
        f" attempt:\n\n------ {recipient} ------\n\n{output}"
    )


SENDMAIL = """\
Return-Path: <>
Date: Sun, 6 Dec 2026 21:23:48 GMT
From: Mail Delivery Subsystem <MAILER-DAEMON@{host}>
Message-Id: <202612062123.6B6LNmrf031862@{host}>
To: <{sender}>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="6B6LNmrf031862.1796592228/{host}"
Subject: {subject}
Auto-Submitted: auto-generated ({auto})

This is a MIME-encapsulated message

--6B6LNmrf031862.1796592228/{host}

The original message was received at Sun, 6 Dec 2026 21:20:48 GMT
from localhost [127.0.0.1]

{heading}
   ----- Transcript of session follows -----
{transcript}

--6B6LNmrf031862.1796592228/{host}
Content-Type: message/delivery-status

Reporting-MTA: dns; {host}
Arrival-Date: Sun, 6 Dec 2026 21:20:48 GMT

{reports}
--6B6LNmrf031862.1796592228/{host}
Content-Type: text/rfc822-headers

From: Newsletter <{sender}>
To: {to}
Subject: Newsletter 4

--6B6LNmrf031862.1796592228/{host}--
"""
_SENDMAIL_WARNING = """\
   **********************************************
   **      THIS IS A WARNING MESSAGE ONLY      **
   **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **
   **********************************************
"""
# The last lines of Sendmail's transcript when the queue lifetime (3 minutes) ran out, and
# when its first warning (after 1 minute) was due.
SENDMAIL_EXPIRED = (
    "Message could not be delivered for 3 minutes\nMessage will be deleted from queue"
)
SENDMAIL_STILL_TRYING = (
    "Warning: message still undelivered after 1 minute\n"
    "Will keep trying until message is 3 minutes old"
)


def sendmail_report(
    recipient: str,
    *,
    status: str,
    reply: str | None = None,
    action: str = "failed",
    remote: bool = True,
    actual: str | None = None,
    diagnostic: str | None = None,
) -> str:
    """Sendmail's report fields for one recipient; ``actual`` its X-Actual-Recipient, a local
    delivery has no ``remote``; ``diagnostic`` replaces ``SMTP; <reply>``."""
    fields = [f"Final-Recipient: RFC822; {recipient}"]
    if actual:
        fields.append(f"X-Actual-Recipient: rfc822; {actual}")
    fields += [f"Action: {action}", f"Status: {status}"]
    if remote:
        fields.append("Remote-MTA: DNS; [192.0.2.25]")
    if diagnostic or reply:
        fields.append(f"Diagnostic-Code: {diagnostic or f'SMTP; {reply}'}")
    fields.append("Last-Attempt-Date: Sun, 6 Dec 2026 21:23:48 GMT")
    if action == "delayed":
        fields.append("Will-Retry-Until: Sun, 6 Dec 2026 21:23:48 GMT")
    return "\n".join(fields) + "\n"


def sendmail_notice(
    transcript: str,
    reports: list[str],
    *,
    errors: str | None = None,
    to: str = "",
    sender: str = "news@example.org",
    host: str = "mx.example.org",
) -> str:
    """Sendmail's notice with ``transcript`` (its session with the receiving server and its
    own words after it) and the ``reports`` of its recipients (``sendmail_report``):
    ``errors`` lists the addresses that had permanent fatal errors (each ``<address>`` and
    ``    (reason: ...)`` lines) in a final notice; without it the notice is a warning. ``to``
    is the returned headers' To (the first report's recipient), ``sender`` the returned
    message's sender, the notice's To."""
    final = errors is not None
    heading = (
        f"   ----- The following addresses had permanent fatal errors -----\n{errors}"
        if final
        else _SENDMAIL_WARNING
    )
    to = to or reports[0].partition("; ")[2].partition("\n")[0]
    return SENDMAIL.format(
        host=host, heading=heading, transcript=transcript, reports="\n".join(reports), to=to,
        sender=sender,
        subject="Returned mail: see transcript for details" if final
        else "Warning: could not send message for past 1 minute",
        auto="failure" if final else "warning-timeout",
    )  # fmt: skip


def sendmail_final(
    recipient: str,
    reply: str,
    session: str,
    *,
    status: str,
    actual: bool = False,
    host: str = "mx.example.org",
) -> str:
    """Sendmail's final notice of ``reply`` for one ``recipient``: ``session`` is its
    transcript after "... while talking to [192.0.2.25]:"; ``actual``: the report names the
    recipient as its X-Actual-Recipient too."""
    return sendmail_notice(
        f"... while talking to [192.0.2.25]:\n{session}",
        [
            sendmail_report(
                recipient, status=status, reply=reply, actual=recipient if actual else None
            )
        ],
        errors=f"<{recipient}>\n    (reason: {reply})\n",
        host=host,
    )
