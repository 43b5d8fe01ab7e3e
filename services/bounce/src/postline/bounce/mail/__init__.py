"""Bounce mails: RFC 3464 reports and the formats of common MTAs and providers."""

from postline.bounce.mail.model import BounceReport, FailedRecipient, Kind, OriginalMessage
from postline.bounce.mail.parse import parse_bounce

__all__ = ["BounceReport", "FailedRecipient", "Kind", "OriginalMessage", "parse_bounce"]
