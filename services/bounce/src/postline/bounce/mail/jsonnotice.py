"""Amazon SES notifications delivered as mail (SNS e-mail subscriptions): JSON, not DSN.

The body is one JSON object (``notificationType`` Bounce, Complaint or Delivery), sometimes
folded at 998 octets with a leading space on the continuation line.
"""

from __future__ import annotations

import json
from typing import Any

from postline.bounce.mail.model import BounceReport, FailedRecipient, Kind, OriginalMessage
from postline.bounce.mail.replies import reply_code


def _load(text: str) -> dict[str, Any] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    body = text[start : end + 1]
    for candidate in (body.replace("\r\n ", "").replace("\n ", ""), body.replace("\n", "")):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_json_notice(text: str) -> BounceReport | None:
    if "notificationType" not in text and "eventType" not in text:
        return None
    data = _load(text)
    if data is None:
        return None
    if "Message" in data and isinstance(data["Message"], str):  # an SNS envelope
        data = _load(data["Message"]) or data
    kind = str(data.get("notificationType") or data.get("eventType") or "")
    mail = data.get("mail") or {}
    common = mail.get("commonHeaders") or {}
    original = OriginalMessage(
        {
            "message-id": str(common.get("messageId", "") or mail.get("messageId", "")),
            "subject": str(common.get("subject", "")),
            "from": ", ".join(common.get("from") or []),
            "to": ", ".join(common.get("to") or []),
        }
    )
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and header.get("name"):
            original.headers.setdefault(str(header["name"]).lower(), str(header.get("value", "")))
    if kind == "Bounce":
        bounce = data.get("bounce") or {}
        transient = bounce.get("bounceType") == "Transient"
        recipients = []
        for item in bounce.get("bouncedRecipients") or []:
            diagnostic = str(item.get("diagnosticCode", ""))
            _, sep, text_part = diagnostic.partition(";")
            recipients.append(
                FailedRecipient(
                    recipient=str(item.get("emailAddress", "")),
                    action="delayed" if transient else str(item.get("action") or "failed"),
                    status=str(item.get("status", "")),
                    reply_code=reply_code(text_part if sep else diagnostic),
                    diagnostic=(text_part if sep else diagnostic).strip(),
                    diagnostic_type=diagnostic.partition(";")[0].strip().lower() if sep else "",
                    remote_mta=str(bounce.get("remoteMtaIp", "")),
                )
            )
        return BounceReport(Kind.BOUNCE, recipients, original)
    if kind == "Complaint":
        complaint = data.get("complaint") or {}
        return BounceReport(
            Kind.FEEDBACK,
            original=original,
            feedback_type=str(complaint.get("complaintFeedbackType", "abuse") or "abuse"),
            feedback_recipients=[
                str(r.get("emailAddress", "")) for r in complaint.get("complainedRecipients") or []
            ],
        )
    if kind == "Delivery":
        delivery = data.get("delivery") or {}
        recipients = [
            FailedRecipient(recipient=str(r), action="delivered")
            for r in delivery.get("recipients") or []
        ]
        return BounceReport(Kind.DELIVERED, recipients, original)
    return None
