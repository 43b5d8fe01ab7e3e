"""What an inbound webhook delivers: one received mail as JSON (README, "Inbound webhooks").

``format: parsed`` (the default) gives the envelope, every header field (decoded, in order),
the usual addressing fields, the text and HTML bodies (decoded, line ends ``\n``) and the
attachments (base64);
``format: raw`` gives the envelope and the message exactly as received (base64). A message
the parser cannot take apart is still delivered, with its raw bytes.
"""

from __future__ import annotations

import base64
import logging
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

from postline.common.headers import first_value, header_fields
from postline.reports.webhooks.events import iso
from postline.v1 import webhooks_pb2

logger = logging.getLogger(__name__)

_PARSER = BytesParser(policy=policy.default)


def inbound_body(mail: webhooks_pb2.InboundMail, *, raw: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": mail.mail_id,
        "received_at": iso(mail.received_at),
        "domain": mail.domain,
        "envelope": {
            "from": mail.envelope_from,
            "to": list(mail.recipients),
            "client_ip": mail.client_ip or None,
            "helo": mail.helo or None,
        },
        "size": len(mail.content),
    }
    if raw:
        data["raw"] = base64.b64encode(mail.content).decode()
    else:
        data.update(_parts(mail))
    return {"type": "postline.inbound", "timestamp": iso(mail.received_at), "data": data}


def _parts(mail: webhooks_pb2.InboundMail) -> dict[str, Any]:
    fields = header_fields(mail.content)
    parts: dict[str, Any] = {
        "headers": [{"name": name, "value": value} for name, value in fields],
        "from": first_value(fields, "From"),
        "to": first_value(fields, "To"),
        "cc": first_value(fields, "Cc"),
        "reply_to": first_value(fields, "Reply-To"),
        "subject": first_value(fields, "Subject"),
        "date": first_value(fields, "Date"),
        "message_id_header": first_value(fields, "Message-ID"),
        "text": None,
        "html": None,
        "attachments": [],
    }
    try:
        message = _PARSER.parsebytes(mail.content)
        assert isinstance(message, EmailMessage)
        parts["text"] = _body(message, "plain")
        parts["html"] = _body(message, "html")
        parts["attachments"] = [_attachment(a) for a in _attachments(message)]
    except Exception:  # a hostile or broken MIME structure must not lose the mail
        logger.warning("%s: MIME structure unreadable; raw message attached", mail.mail_id)
        parts["raw"] = base64.b64encode(mail.content).decode()
    return parts


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_disposition() == "attachment":
        return None
    content = part.get_content()
    # Line ends as JSON readers expect them, whatever the wire had (CRLF).
    return content.replace("\r\n", "\n") if isinstance(content, str) else None


def _attachments(message: EmailMessage) -> list[Message]:
    if not message.is_multipart():
        return []
    return list(message.iter_attachments())


def _attachment(part: Message) -> dict[str, Any]:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        content = payload
    elif part.get_content_type() == "message/rfc822" and part.is_multipart():
        attached = part.get_payload(0)  # an attached message, as it was
        content = attached.as_bytes() if isinstance(attached, Message) else b""
    else:
        content = b""
    content_id = part.get("Content-ID")
    return {
        "filename": part.get_filename(),
        "content_type": part.get_content_type(),
        "disposition": part.get_content_disposition(),
        "content_id": str(content_id).strip("<> ") if content_id else None,
        "size": len(content),
        "content": base64.b64encode(content).decode(),
    }
