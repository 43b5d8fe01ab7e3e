"""The mail of a delivery status notification (RFC 3464 in an RFC 6522 multipart/report).

Pure: a `Notice` (what happened to one delivery) in, the notice's bytes out. Three parts:

1. ``text/plain`` for people, in English or Japanese (the API user's ``language``);
2. ``message/delivery-status``: the per-message fields (Reporting-MTA, Original-Envelope-Id,
   Arrival-Date), a blank line, the recipient's fields (Original-Recipient, Final-Recipient,
   Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until);
3. the message itself (``message/rfc822``) when the submitter asked ``RET=FULL``, otherwise its
   header section (``text/rfc822-headers``): RFC 3461 §4.3 leaves the default to the MTA, and
   headers alone return no content nobody asked for.

The bytes are written out here rather than through ``email.message``, whose generator would
refold the fields and re-encode the returned message.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from enum import StrEnum

from postline.v1 import delivery_pb2

# RFC 5322 §2.1: the header section ends at the first empty line.
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")
_LINE_BREAKS = re.compile(rb"\r?\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class Action(StrEnum):
    """RFC 3464 §2.3.3 actions Postline reports."""

    DELAYED = "delayed"
    FAILED = "failed"
    DELIVERED = "delivered"


@dataclass(frozen=True)
class Notice:
    action: Action
    reporting_mta: str  # a domain name (RFC 3464 §2.2.2 "dns" type)
    sender: str  # the notice's From (notices.from)
    to: str  # the submitter's envelope sender
    recipient: str  # the delivery's recipient (Final-Recipient)
    original_recipient: str  # "addr-type;address" or ""
    envelope_id: str  # ENVID or ""
    status: str  # RFC 3463 code, e.g. "5.1.1"
    diagnostic: str  # "smtp; 550 5.1.1 ..." or "x-postline; ...", "" when none
    remote_mta: str  # the MX host, "" when none was reached
    arrival: datetime
    last_attempt: datetime
    will_retry_until: datetime | None  # for a delay
    original: bytes  # the delivery's message
    full: bool  # return the whole message (RET=FULL), else its header section
    original_message_id: str  # the Message-ID header of the original, for References
    language: str = "en"  # en | ja
    delivery_id: str = ""


def compose(notice: Notice, now: datetime) -> bytes:
    """The notice's RFC 5322 bytes (CRLF line ends)."""
    boundary = _boundary(notice, now)
    subject = _SUBJECTS[notice.language][notice.action]
    heads = [
        f"From: {_DISPLAY[notice.language]} <{notice.sender}>",
        f"To: <{notice.to}>",
        f"Subject: {_encoded_word(subject)}",
        f"Date: {format_datetime(now.astimezone(UTC))}",
        f"Message-ID: <notice.{notice.action}.{notice.delivery_id or boundary[-16:]}"
        f"@{notice.reporting_mta}>",
        # RFC 3834 §5: an automatic answer; RFC 3464 §5: never answered by another notice.
        "Auto-Submitted: auto-replied",
        f"X-Postline-Notice: {notice.action}; delivery={notice.delivery_id}",
    ]
    if notice.original_message_id:
        heads += [
            f"In-Reply-To: {notice.original_message_id}",
            f"References: {notice.original_message_id}",
        ]
    heads += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    human = _human(notice).encode()
    human_part = [
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Description: Notification",
    ]
    if human.isascii():
        human_part.append("Content-Transfer-Encoding: 7bit")
        human_body = human
    else:
        human_part.append("Content-Transfer-Encoding: base64")
        human_body = base64.encodebytes(human).replace(b"\n", b"\r\n")
    status_part = [
        "Content-Type: message/delivery-status",
        "Content-Description: Delivery report",
    ]
    returned, returned_part = _returned(notice)
    pieces = [
        _lines(heads),
        b"\r\n",
        b"This is a MIME-encapsulated message.\r\n\r\n",
        _part(boundary, human_part, human_body),
        _part(boundary, status_part, _status_fields(notice)),
        _part(boundary, returned_part, returned),
        f"--{boundary}--\r\n".encode(),
    ]
    return b"".join(pieces)


def delivery_status(notice: Notice) -> str:
    """The ``message/delivery-status`` body (per-message block, blank line, recipient block)."""
    return _status_fields(notice).decode()


def _status_fields(notice: Notice) -> bytes:
    message = [f"Reporting-MTA: dns; {notice.reporting_mta}"]
    if notice.envelope_id:
        message.append(f"Original-Envelope-Id: {notice.envelope_id}")
    message.append(f"Arrival-Date: {format_datetime(notice.arrival.astimezone(UTC))}")
    recipient = []
    if notice.original_recipient:
        recipient.append(f"Original-Recipient: {notice.original_recipient}")
    recipient += [
        f"Final-Recipient: rfc822; {notice.recipient}",
        f"Action: {notice.action}",
        f"Status: {notice.status}",
    ]
    if notice.remote_mta:
        recipient.append(f"Remote-MTA: dns; {notice.remote_mta}")
    if notice.diagnostic:
        recipient.append(f"Diagnostic-Code: {_one_line(notice.diagnostic)}")
    recipient.append(f"Last-Attempt-Date: {format_datetime(notice.last_attempt.astimezone(UTC))}")
    if notice.will_retry_until is not None:
        until = format_datetime(notice.will_retry_until.astimezone(UTC))
        recipient.append(f"Will-Retry-Until: {until}")
    return _lines(message) + b"\r\n" + _lines(recipient)


def _returned(notice: Notice) -> tuple[bytes, list[str]]:
    content = _LINE_BREAKS.sub(b"\r\n", notice.original)
    if notice.full:
        body = content if content.endswith(b"\r\n") else content + b"\r\n"
        kind = "message/rfc822"
    else:
        end = _END_OF_HEADERS.search(content)
        body = (content[: end.start()] if end else content).rstrip(b"\r\n") + b"\r\n"
        kind = "text/rfc822-headers"
    head = [f"Content-Type: {kind}", "Content-Description: Undelivered message"]
    if notice.action == Action.DELIVERED:
        head[1] = "Content-Description: Delivered message"
    # RFC 6152 / RFC 2046 §5.2.1: a message/rfc822 part may be 8bit, never base64.
    head.append("Content-Transfer-Encoding: " + ("7bit" if body.isascii() else "8bit"))
    return body, head


def _part(boundary: str, head: list[str], body: bytes) -> bytes:
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return f"--{boundary}\r\n".encode() + _lines(head) + b"\r\n" + body + b"\r\n"


def _lines(lines: list[str]) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode()


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()[:900]


def _boundary(notice: Notice, now: datetime) -> str:
    seed = f"{notice.delivery_id}/{notice.action}/{now.timestamp()}".encode()
    return "=_postline_" + hashlib.sha256(seed).hexdigest()[:24]


def _encoded_word(text: str) -> str:
    if text.isascii():
        return text
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _when(moment: datetime | None) -> str:
    return format_datetime(moment.astimezone(UTC)) if moment is not None else ""


def _human(notice: Notice) -> str:
    reason = _one_line(notice.diagnostic.partition(";")[2] or notice.diagnostic)
    values = {
        "mta": notice.reporting_mta,
        "recipient": notice.recipient,
        "reason": reason or notice.status,
        "until": _when(notice.will_retry_until),
        "arrival": _when(notice.arrival),
        "returned": _RETURNED[notice.language][notice.full],
    }
    return _TEXTS[notice.language][notice.action].format(**values).replace("\n", "\r\n")


_DISPLAY = {"en": "Mail Delivery System", "ja": "Mail Delivery System"}

_SUBJECTS = {
    "en": {
        Action.FAILED: "Undelivered Mail Returned to Sender",
        Action.DELAYED: "Delayed Mail (still being retried)",
        Action.DELIVERED: "Successful Mail Delivery Report",
    },
    "ja": {
        Action.FAILED: "Undelivered Mail Returned to Sender (配信できませんでした)",
        Action.DELAYED: "Delayed Mail (配信が遅れています)",
        Action.DELIVERED: "Successful Mail Delivery Report (配信しました)",
    },
}

_RETURNED = {
    "en": {True: "The message is attached.", False: "The message's headers are attached."},
    "ja": {True: "元のメッセージを添付します。", False: "元のメッセージのヘッダーを添付します。"},
}

_TEXTS = {
    "en": {
        Action.FAILED: (
            "This is the mail system at {mta}.\n\n"
            "Your message could not be delivered to the recipient below, and it will not\n"
            "be tried again. {returned}\n\n"
            "<{recipient}>: {reason}\n"
        ),
        Action.DELAYED: (
            "This is the mail system at {mta}.\n\n"
            "THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\n"
            "Your message, received {arrival}, could not be delivered yet to the\n"
            "recipient below. It will be tried again until {until}; you will hear again\n"
            "only if it fails. {returned}\n\n"
            "<{recipient}>: {reason}\n"
        ),
        Action.DELIVERED: (
            "This is the mail system at {mta}.\n\n"
            "Your message was delivered to the recipient below: its mail server accepted\n"
            "it. {returned}\n\n"
            "<{recipient}>: {reason}\n"
        ),
    },
    "ja": {
        Action.FAILED: (
            "{mta} のメールシステムからのお知らせです。\n\n"
            "次の宛先にメッセージを配信できませんでした。再送はしません。{returned}\n\n"
            "<{recipient}>: {reason}\n"
        ),
        Action.DELAYED: (
            "{mta} のメールシステムからのお知らせです。\n\n"
            "これは警告です。メッセージを送り直す必要はありません。\n\n"
            "{arrival} に受け付けたメッセージを、次の宛先にまだ配信できていません。\n"
            "{until} まで再送を続けます。配信できなかった場合のみ改めてお知らせします。"
            "{returned}\n\n"
            "<{recipient}>: {reason}\n"
        ),
        Action.DELIVERED: (
            "{mta} のメールシステムからのお知らせです。\n\n"
            "次の宛先にメッセージを配信しました(宛先のメールサーバーが受け取りました)。"
            "{returned}\n\n"
            "<{recipient}>: {reason}\n"
        ),
    },
}


def returned_full(request: delivery_pb2.DsnRequest | None) -> bool:
    return request is not None and request.ret == delivery_pb2.DSN_RETURN_FULL
