"""The message as it goes on the wire: CRLF line ends, the application's ``Received`` headers
removed when the policy says so, everything else byte for byte as accepted.

Header fields are handled as raw lines (RFC 5322 §2.2: a field is a line starting with its
name plus the continuation lines that start with white space), never re-serialised by a mail
library, so nothing the application wrote changes by accident (a re-folded header would also
break any signature the application added itself).
"""

from __future__ import annotations

import email.utils
import functools
import re

_LINE_ENDS = re.compile(rb"\r\n|\n|\r")
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def crlf(content: bytes) -> bytes:
    """Every line end as CRLF (SMTP's, RFC 5321 §2.3.8), as the wire and DKIM see it."""
    pairs = content.count(b"\r\n")
    if content.count(b"\n") == pairs and content.count(b"\r") == pairs:
        return content
    return _LINE_ENDS.sub(b"\r\n", content)


def split_header(content: bytes) -> tuple[bytes, bytes]:
    """(header section with its last CRLF, the rest from the empty line on); CRLF content."""
    if content.startswith(b"\r\n"):
        return b"", content
    end = content.find(b"\r\n\r\n")
    if end < 0:
        return content, b""
    return content[: end + 2], content[end + 2 :]


def header_fields(header: bytes) -> list[bytes]:
    """The raw fields of a header section, each with its continuation lines and CRLFs."""
    fields: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def field_name(field: bytes) -> str:
    match = _FIELD_NAME.match(field)
    return match[1].decode("ascii").lower() if match else ""


def strip_received(content: bytes) -> bytes:
    """The message without its ``Received`` fields; all other bytes unchanged."""
    header, rest = split_header(content)
    fields = header_fields(header)
    kept = [f for f in fields if field_name(f) != "received"]
    if len(kept) == len(fields):
        return content
    return b"".join(kept) + rest


def from_domain(content: bytes) -> str | None:
    """The lowercased domain of the first address in the ``From`` field (RFC 5322 §3.6.2),
    the domain a DKIM signature must align with for DMARC."""
    header, _ = split_header(content)
    for field in header_fields(header):
        if field_name(field) == "from":
            return _field_domain(field)
    return None


@functools.lru_cache(maxsize=4096)
def _field_domain(field: bytes) -> str | None:
    """The domain of a ``From`` field's first address (most mail comes from a few senders, so
    each distinct field is parsed once)."""
    value = field.split(b":", 1)[1].decode("ascii", "replace")
    value = re.sub(r"\r\n([ \t])", r"\1", value).strip()  # unfold (RFC 5322 §2.2.3)
    for _, address in email.utils.getaddresses([value]):
        if "@" in address:
            return address.rpartition("@")[2].lower().strip().removesuffix(".") or None
    return None
