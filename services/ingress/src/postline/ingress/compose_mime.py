"""Building RFC 5322 messages from the send API's parts (stdlib ``email``, CRLF line ends).

The MIME tree is the usual one: ``text/plain`` or ``text/html`` alone, both as
``multipart/alternative`` (plain first: RFC 2046 §5.1.4 puts the preferred, richest part last),
and attachments wrapped with it in ``multipart/mixed``. Non-ASCII header values are encoded per
RFC 2047 and bodies per RFC 2045 (quoted-printable or base64), so the result is 7-bit clean and
needs neither 8BITMIME nor SMTPUTF8 at the destination.

Inputs are expected to be checked already (`postline.ingress.api.checks`): header names and
values are single lines, addresses follow Postline's rules.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

# 7bit: bodies are quoted-printable or base64 when not ASCII, so no 8BITMIME is needed.
# refold_source="none": From and To are written by `_mailbox_list` already folded, and go out
# as they are. The stdlib would parse and refold them, and its address parser knows neither
# Postline's relaxed addresses nor how to keep a display name with specials intact.
POLICY = SMTP.clone(cte_type="7bit", refold_source="none")

_FOLD = "\r\n "
_LINE = 78  # RFC 5322 §2.1.1: SHOULD fit 78 characters (it MUST fit 998)
# A display name that needs no quotes: atext and single spaces (RFC 5322 §3.2.3, §3.2.5).
_ATOM = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_PLAIN_PHRASE = re.compile(rf"{_ATOM}(?: {_ATOM})*")
# RFC 2047 §2: an encoded-word is at most 75 characters.
_MAX_ENCODED_WORD = 75

# Header fields the composer writes itself; custom headers may not set them. Cc and Bcc too:
# recipients come from ``to`` only, and a Cc naming someone who gets nothing would mislead.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "mime-version",
        "x-api-data",
        "return-path",
    }
)


def is_reserved_header(name: str) -> bool:
    """Whether the composer writes ``name`` itself (every ``Content-*`` field belongs to MIME)."""
    lname = name.lower()
    return lname in RESERVED_HEADERS or lname.startswith("content-")


def header_problem(name: str, value: str) -> str | None:
    """Why the stdlib cannot write ``name: value`` faithfully, or None.

    Structured fields (addresses, dates, message ids) are parsed; a value the parser has to
    repair or drop (``Reply-To: not an address``, ``Resent-Date: soon``) is refused rather than
    sent mangled.
    """
    try:
        header = POLICY.header_factory(name, value)
        header.fold(policy=POLICY)
    except Exception as exc:  # the stdlib's parser raises all sorts on hostile input
        return f"cannot be written as a {name} header ({type(exc).__name__})"
    if header.defects:
        return f"not a valid {name} header: {header.defects[0]}"
    return None


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "type/subtype"
    content: bytes


@dataclass(frozen=True)
class Draft:
    """A message to compose. ``sender`` and ``recipients`` are addresses in their wire form."""

    sender: str
    recipients: Sequence[str]
    subject: str = ""
    text: str | None = None
    html: str | None = None
    sender_name: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    api_data: str = ""
    attachments: Sequence[Attachment] = ()


def compose(draft: Draft, hostname: str, *, now: datetime | None = None) -> bytes:
    """The message as bytes with CRLF line ends, ready for `submit`."""
    message = EmailMessage(policy=POLICY)
    message.set_raw("From", _mailbox_list("From", [_mailbox(draft.sender_name, draft.sender)]))
    message.set_raw("To", _mailbox_list("To", list(draft.recipients)))
    if draft.subject:
        message["Subject"] = draft.subject
    message["Date"] = format_datetime(now or datetime.now(UTC))
    if not any(name.lower() == "message-id" for name in draft.headers):
        message["Message-ID"] = make_msgid(domain=hostname)
    if draft.api_data:
        message["X-Api-Data"] = draft.api_data
    for name, value in draft.headers.items():
        message[name] = value
    _set_body(message, draft)
    for attachment in draft.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    # The stdlib copies MIME-Version into every part it wraps; RFC 2045 §4 wants it at the top.
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]
    return message.as_bytes()


def _mailbox(display_name: str, address: str) -> str:
    if not display_name:
        return address
    phrase = _phrase(display_name)
    last = phrase.rsplit(_FOLD, 1)[-1]
    fits = len("From: ") + len(last) + len(address) + 3 <= _LINE
    return f"{phrase}{' ' if fits else _FOLD}<{address}>"


def _phrase(text: str) -> str:
    """A display name as RFC 5322 §3.2.5 ``phrase``: as is, quoted, or RFC 2047 encoded."""
    if not text.isascii():
        return _encoded_words(text)
    if _PLAIN_PHRASE.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _encoded_words(text: str) -> str:
    # "B" encoding: RFC 2047 §5 (3) limits "Q" in a phrase to a few characters, "B" has no limit.
    words: list[str] = []
    chunk = ""
    for char in text:
        if len(_encoded_word(chunk + char)) > _MAX_ENCODED_WORD:
            words.append(_encoded_word(chunk))
            chunk = ""
        chunk += char
    words.append(_encoded_word(chunk))
    return _FOLD.join(words)


def _encoded_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def _mailbox_list(name: str, mailboxes: list[str]) -> str:
    """Mailboxes joined with commas, folded before one that would make a line too long."""
    out = ""
    line = len(name) + 2
    for i, mailbox in enumerate(mailboxes):
        first = mailbox.split(_FOLD, 1)[0]
        if i > 0:
            out += ","
            line += 1
            if line + 1 + len(first) > _LINE:
                out += _FOLD
                line = 1
            else:
                out += " "
                line += 1
        out += mailbox
        last = mailbox.rsplit(_FOLD, 1)[-1]
        line = (1 + len(last)) if _FOLD in mailbox else line + len(mailbox)
    return out


def _set_body(message: EmailMessage, draft: Draft) -> None:
    if draft.text is not None:
        message.set_content(draft.text)
        if draft.html is not None:
            message.add_alternative(draft.html, subtype="html")
    elif draft.html is not None:
        message.set_content(draft.html, subtype="html")
