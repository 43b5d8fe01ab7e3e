"""A bounce mail -> one classified verdict per failed recipient (what the CLI prints)."""

from __future__ import annotations

from dataclasses import dataclass

from postline.bounce.classify import classify_failure
from postline.bounce.mail import BounceReport, FailedRecipient, Kind, parse_bounce


@dataclass(frozen=True)
class Verdict:
    recipient: str
    status: int  # error status 1..10, 99
    delivery: str  # failed | deferred
    reply_code: int
    enhanced_status: str
    reason: str  # the diagnostic text
    rule: str = ""  # the rules' reason that decided the status (user-unknown, spam...)
    final_recipient: str = ""  # where an alias or a forwarding led the mail, if elsewhere

    def as_json(self) -> dict[str, object]:
        row: dict[str, object] = {
            "recipient": self.recipient,
            "status": self.status,
            "delivery": self.delivery,
            "reply_code": self.reply_code or None,
            "enhanced_status": self.enhanced_status or None,
            "reason": self.reason,
        }
        if self.final_recipient:
            row["final_recipient"] = self.final_recipient
        return row


def verdict_for(failed: FailedRecipient) -> Verdict:
    verdict = classify_failure(
        failed.reply_code,
        failed.status,
        failed.diagnostic,
        command=failed.command,
        diagnostic_type=failed.diagnostic_type,
        action=failed.action,
        hint=failed.hint,
        context=failed.context,
        queued_hours=failed.queued_hours,
    )
    return Verdict(
        recipient=failed.recipient,
        status=verdict.status,
        delivery="failed" if verdict.permanent else "deferred",
        reply_code=failed.reply_code,
        enhanced_status=failed.status,
        reason=failed.diagnostic,
        rule=verdict.reason,
        final_recipient=failed.final_recipient,
    )


def classify_report(report: BounceReport) -> list[Verdict]:
    if report.kind is not Kind.BOUNCE:
        return []
    return [verdict_for(r) for r in report.recipients]


def classify_mail(raw: bytes) -> tuple[BounceReport, list[Verdict]]:
    report = parse_bounce(raw)
    return report, classify_report(report)
