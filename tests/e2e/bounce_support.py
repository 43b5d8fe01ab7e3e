"""A bounce mail as a destination sends it, for the end-to-end modules that send one back."""

from __future__ import annotations

# The recipient whose mailbox is full.
RCPT = "reader@later.test"


def dsn(return_path: str) -> bytes:
    """A Postfix-style DSN to ``return_path``: the mail to ``RCPT`` failed, mailbox full."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.later.test>\r\n"
        f"To: {return_path}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\n"
        "This is the mail system at host mx.later.test.\r\n\r\n"
        f"<{RCPT}>: mailbox is full\r\n\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.later.test\r\n\r\n"
        f"Final-Recipient: rfc822; {RCPT}\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        "Diagnostic-Code: x-local; 552 5.2.2 mailbox is full, quota exceeded\r\n\r\n"
        "--b--\r\n"
    ).encode()
