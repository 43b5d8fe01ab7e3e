"""Taking a bounce mail apart: its parts, decoded text, and the returned original's headers.

Parsing uses the ``compat32`` policy: bounce mails are often malformed, and its lenient,
lazy parser is several times faster than ``email.policy.default`` (the benchmark needs
well over a thousand mails a second on one core). Its tree is built by ``tree.py``: the
same tree, in fewer steps.
"""

from __future__ import annotations

import codecs
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message
from functools import cached_property
from html.parser import HTMLParser
from itertools import dropwhile, takewhile

from postline.bounce.mail.flowed import unflow
from postline.bounce.mail.folding import refold
from postline.bounce.mail.tree import message_from_bytes
from postline.common.headers import decode_words, first_values, is_field, scan

MAX_HEADER = 16 * 1024

# Parts that are the returned message, not the notice about it.
ORIGINAL_TYPES = frozenset({"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"})
REPORT_TYPES = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/feedback-report",
        # read for its fields: a Sieve reject's notice comes in this form (RFC 5429)
        "message/disposition-notification",
        "message/global-disposition-notification",
    }
)


def read_message(raw: bytes) -> Message:
    message = message_from_bytes(raw)
    if len(message) and any(
        isinstance(d, MissingHeaderBodySeparatorDefect) for d in message.defects
    ):
        # The header block ended at a line that is no field: a fold that lost its white space?
        refolded = refold(raw)
        if refolded is not None:
            return message_from_bytes(refolded)
    return message


def decode_text(payload: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            codecs.lookup(candidate)
            return payload.decode(candidate)
        except (LookupError, UnicodeError, ValueError):
            # An unknown or unusable charset (a NUL in its name, a text transform such as
            # rot13): the next candidate, and Latin-1 reads any bytes.
            continue
    return payload.decode("latin-1")


def payload_of(part: Message) -> object:
    """``part.get_payload()``, which decodes 8-bit text with the part's charset parameter
    and raises on a charset it cannot use (a NUL in its name): then the bytes as Latin-1."""
    try:
        return part.get_payload()
    except (LookupError, UnicodeError, ValueError):
        raw = part.get_payload(decode=True)
        return raw.decode("latin-1") if isinstance(raw, bytes) else ""


def part_text(part: Message) -> str:
    """A leaf part's body as text (transfer encoding and charset undone; format=flowed
    text read back into its lines, RFC 3676)."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        text = decode_text(payload, part.get_content_charset())
    else:
        raw = payload_of(part)
        text = raw if isinstance(raw, str) else ""
    return _unflowed(part, text) if text else text


def _unflowed(part: Message, text: str) -> str:
    fmt = part.get_param("format")
    if not isinstance(fmt, str) or fmt.strip().lower() != "flowed":
        return text
    if part.get_content_type() != "text/plain":
        return text
    delsp = part.get_param("delsp")
    return unflow(text, delsp=isinstance(delsp, str) and delsp.strip().lower() == "yes")


class _TextOf(HTMLParser):
    """The text of an HTML notice: entities decoded by the standard library (every HTML5
    named and numeric reference), a line break where a block ends, no style or script."""

    BREAKS = frozenset({"br", "p", "div", "tr", "li", "table", "h1", "h2", "h3", "h4", "pre"})
    SKIP = frozenset({"style", "script", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BREAKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BREAKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOf()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # a malformed declaration; keep what was read
        pass
    return "".join(parser.out)


def header_text(value: object) -> str:
    """A header value with RFC 2047 encoded words decoded; never raises."""
    if value is None:
        return ""
    # What a bounce's headers say is in their first kilobytes; the standard library's
    # decode_header takes time quadratic in the number of encoded words, so a huge header
    # (a hostile or broken one) is cut first.
    # A broken encoded word ("=?utf-8?B?###?=") leaves the header as it came.
    return " ".join(decode_words(str(value)[:MAX_HEADER]).split())


def block_text(block: Message) -> str:
    """A parsed header block back to ``Name: value`` lines (unfolding kept as continuation).
    A field's 8-bit bytes are read as UTF-8 (else Latin-1), not as compat32's replacement
    characters: Postfix quotes a delivery program's UTF-8 output in its Diagnostic-Code as it
    came (round 75: Mailutils' mda in German, Russian), in a plain message/delivery-status
    (RFC 6533 would have a message/global-delivery-status)."""
    return "\n".join(f"{name}: {_field_text(value)}" for name, value in block.raw_items())


def _field_text(value: str) -> str:
    if value.isascii():
        return value
    return decode_text(value.encode("utf-8", "surrogateescape"), None)


def report_text(part: Message) -> str:
    """The text of a message/delivery-status (or feedback-report) part, however it came."""
    payload = payload_of(part)
    if isinstance(payload, list):
        blocks = [block_text(b) for b in payload if isinstance(b, Message)]
        # compat32 parses each field block as a header block; a body left after a block
        # (a malformed report) is kept too.
        bodies = [payload_of(b) for b in payload if isinstance(b, Message)]
        return "\n\n".join(blocks + [b for b in bodies if isinstance(b, str) and b])
    return part_text(part)


class Parts:
    """The parts of a bounce, sorted into the notice (text and reports) and the original."""

    def __init__(self, message: Message) -> None:
        self.plain: list[str] = []
        self.html: list[str] = []
        self.reports: list[tuple[str, str]] = []  # (content type, text)
        self.original: Message | None = None
        self.original_text = ""  # text/rfc822-headers, or an undecodable message/rfc822
        self._walk(message, top=True)

    def _walk(self, part: Message, *, top: bool = False) -> None:
        ctype = part.get_content_type()
        if ctype in ORIGINAL_TYPES:
            self._original(part, ctype)
            return
        if ctype in REPORT_TYPES:
            self.reports.append((ctype, report_text(part)))
            return
        if part.is_multipart():
            payload = payload_of(part)
            if isinstance(payload, list):
                for sub in payload:
                    if isinstance(sub, Message):
                        self._walk(sub)
            return
        if ctype.startswith("multipart/"):
            # A multipart whose boundary could not be read (a broken header fold): its
            # body is still the notice's text.
            self.plain.append(part_text(part))
        elif ctype == "text/html":
            self.html.append(part_text(part))  # read as text only when there is no plain
        elif ctype.startswith("text/") or top or ctype == "message/partial":
            self.plain.append(part_text(part))
        elif part.get_content_maintype() == "message":
            # e.g. message/disposition-notification: read it as a report.
            self.reports.append((ctype, report_text(part)))

    def _original(self, part: Message, ctype: str) -> None:
        if self.original is not None or self.original_text:
            return
        payload = payload_of(part)
        if ctype == "message/rfc822" and isinstance(payload, list) and payload:
            first = payload[0]
            if isinstance(first, Message) and len(first.keys()) > 0:
                self.original = first
                return
        self.original_text = part_text(part) if not isinstance(payload, list) else ""

    @cached_property
    def notice(self) -> str:
        """The human-readable notice: its plain text parts, else its HTML as text, with
        "\n" line ends (a mail stored with CRLF keeps them in its parts; the formats' patterns
        anchor lines with "$", which does not match before "\r")."""
        if any(t.strip() for t in self.plain):
            text = "\n".join(self.plain)
        else:
            text = "\n".join(html_to_text(h) for h in self.html)
        return text.replace("\r\n", "\n")


def headers_of(text: str) -> dict[str, str]:
    """Parse the leading header block of some text (the returned original's headers).

    A notice quotes the original as it likes: lines before the first field are passed over,
    and a line of blanks ends the block as an empty one does."""
    fields = header_fields_of(text)
    return {name: header_text(value) for name, value in first_values(fields).items()}


def header_fields_of(text: str) -> list[tuple[str, str]]:
    """The leading header block of some text as (name, value), in order, read as
    ``headers_of`` reads it (values unfolded, not decoded)."""
    lines = takewhile(str.strip, text.lstrip("\r\n").splitlines())
    return scan(dropwhile(lambda line: not is_field(line), lines))


class Headers(dict[str, str]):
    """Header values by lowercased name (the first of a repeated one), decoded on first read.

    A bounce and its returned original carry dozens of headers of which a few are read:
    decoding RFC 2047 words and unfolding only those keeps parsing fast."""

    def get(self, key: str, default: str = "") -> str:  # type: ignore[override]
        value = super().get(key)
        if value is None:
            return default
        if "=?" in value or "\n" in value or "\t" in value:
            value = header_text(value)
            self[key] = value
        return value

    def __getitem__(self, key: str) -> str:
        if key not in self:
            raise KeyError(key)
        return self.get(key)


def message_headers(message: Message) -> Headers:
    return Headers(first_values(message.items()))
