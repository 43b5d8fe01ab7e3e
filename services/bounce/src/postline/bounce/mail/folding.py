"""Folded header lines that lost their leading white space, put back (RFC 5322 section 2.2.3).

A long header field is folded onto lines that begin with white space. A mail copied through
something that strips it (a paste, a web form, a test fixture) keeps those lines without it,
and a parser takes the first of them for the end of the header block: Python's email package
records a ``MissingHeaderBodySeparatorDefect`` and reads every line after it as the body, so
a notice loses its From, Subject and Content-Type and its report is never found.

Such a line is read as the continuation it was only when the block plainly goes on: the
mail's first line is a header field, and after the stray line, before the first empty line,
comes a field that every message's own header block holds (RFC 5322 section 3.6, RFC 2045's
MIME fields). A mail whose body simply starts without the empty line has no such field after
its first body line, and is left as the email package reads it.
"""

from __future__ import annotations

import re

# A line the email package reads as part of a header block: a field ("Name:"), a
# continuation (leading white space), or an mbox "From " line.
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[ \t]")
_FIELD_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+):")
_MESSAGE_FIELDS = frozenset(
    {
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"subject",
        b"date",
        b"message-id",
        b"in-reply-to",
        b"references",
        b"mime-version",
        b"content-type",
        b"content-transfer-encoding",
    }
)


def refold(raw: bytes) -> bytes | None:
    """The mail with each stray line of its header block indented as a continuation, or
    None when there is none, or nothing shows the block goes on after it."""
    lines = raw.splitlines(keepends=True)
    if not lines or not _FIELD_NAME.match(lines[0]):
        return None
    stray: list[int] = []
    named_after = False
    for number, line in enumerate(lines):
        if not line.strip(b"\r\n"):
            break  # the empty line that ends the block
        if not _HEADER_LINE.match(line):
            stray.append(number)
            named_after = False
        elif stray and (field := _FIELD_NAME.match(line)):
            named_after = named_after or field.group(1).lower() in _MESSAGE_FIELDS
    if not stray or not named_after:
        return None
    for number in stray:
        lines[number] = b" " + lines[number]
    return b"".join(lines)
