"""What a parsed bounce mail says: its kind, each failed recipient, the returned original."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """What a mail sent to a return-path address is."""

    BOUNCE = "bounce"  # a delivery failure or delay notice (RFC 3464 or a vendor's own format)
    FEEDBACK = "feedback"  # an ARF report (RFC 5965): a complaint, not a bounce
    AUTOREPLY = "autoreply"  # a vacation or other automatic answer (RFC 3834)
    DELIVERED = "delivered"  # a success notice (Action: delivered / relayed / expanded)
    UNKNOWN = "unknown"  # nothing recognisable


@dataclass
class FailedRecipient:
    """One recipient of a bounce as the mail states it (classification comes later)."""

    recipient: str
    action: str = "failed"  # failed | delayed (RFC 3464 Action)
    status: str = ""  # enhanced status code, e.g. "5.1.1"
    reply_code: int = 0
    diagnostic: str = ""  # the remote server's words, or the reporting MTA's
    diagnostic_type: str = ""  # RFC 3464 diagnostic-type: smtp, x-unix, x-postfix...
    command: str = ""  # the SMTP command that failed: CONN, HELO, MAIL, RCPT, DATA
    # (or FILTER: the notice is a filter's own, rules/mail_formats.yaml hints)
    remote_mta: str = ""
    hint: str = ""  # a reason a vendor's notice states outright (rules' reason name)
    context: str = ""  # the notice's other words, read when the diagnostic names no reason
    final_recipient: str = ""  # where an alias or a forwarding led, when not the recipient
    listed_as: str = ""  # the section of a text notice that lists it: failed, delayed, delivered
    # How long the reporting MTA held the message before this notice: its report's
    # Arrival-Date to the recipient's Last-Attempt-Date, or to the notice's Date (RFC 3464).
    queued_hours: float = 0.0


@dataclass
class OriginalMessage:
    """Headers of the returned message, when the bounce carries them."""

    headers: dict[str, str] = field(default_factory=dict)  # lowercased names, first value
    # The address each Received header names ("for <x>"), latest hop first: the envelope
    # recipient as each MTA on the way saw it (the last one is the address sent to).
    received_for: tuple[str, ...] = ()
    # The Delivered-To addresses of the destination's own deliveries (those above the first
    # Received header of a hop between hosts), latest first: its alias and forwarding steps.
    delivered_to: tuple[str, ...] = ()
    # The address each Received header names with the host that wrote it ("by"): (host,
    # address), latest first.
    received_by: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class BounceReport:
    kind: Kind
    recipients: list[FailedRecipient] = field(default_factory=list)
    original: OriginalMessage = field(default_factory=OriginalMessage)
    feedback_type: str = ""  # for Kind.FEEDBACK: abuse, fraud, opt-out...
    feedback_recipients: list[str] = field(default_factory=list)
