"""Reading a message's header fields: the one scanner every service uses.

A field is a line ``Name: value`` plus the continuation lines that start with white space
(RFC 5322 §2.2); unfolding joins them by dropping the line breaks (§2.2.3). The header
section ends at the first empty line, or, as a mail reader would, at the first line that is
neither a field nor a continuation. Values a person reads are decoded from RFC 2047
encoded-words; where a name occurs several times the first occurrence is "the" value.

Ingress reads the fields of submitted mail with it (what filters match, the delivery's
subject), the scheduler's filters normalise values with it, reports parse inbound mail with
it, and the bounce parser reads a returned original's quoted headers with it. The sender keeps
its fields as raw bytes instead (``sender/message.py``): it must not change what it passes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.errors import HeaderParseError
from email.header import decode_header, make_header

# RFC 5322 §2.1: the header section ends at the first empty line.
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")
# RFC 5322 §3.6.8 field name: printable US-ASCII except ':'.
_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
# A field line; obsolete syntax (RFC 5322 §4.5) allows blanks before the colon.
_FIELD = re.compile(rf"({_NAME.pattern})[ \t]*:[ \t]*(.*)", re.DOTALL)
# RFC 5322 §2.2.3: a line break followed by white space is just the white space.
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def is_field_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def is_field(line: str) -> bool:
    """Whether a line starts a header field (``Name: value``)."""
    return _FIELD.fullmatch(line.removesuffix("\r")) is not None


def scan(lines: Iterable[str]) -> list[tuple[str, str]]:
    """The fields at the start of ``lines`` as (name as written, value unfolded and stripped),
    in order, up to the first line that is neither a field nor a continuation (an empty line
    included). Values are not decoded."""
    fields: list[tuple[str, str]] = []
    name, parts = "", []
    for line in lines:
        line = line.removesuffix("\r")
        if line[:1] in (" ", "\t") and name:
            parts.append(line)  # folded: unfolding drops the line break
            continue
        if name:
            fields.append((name, "".join(parts).strip()))
            name = ""
        match = _FIELD.fullmatch(line)
        if match is None:
            break
        name, parts = match.group(1), [match.group(2)]
    if name:
        fields.append((name, "".join(parts).strip()))
    return fields


def header_fields(content: bytes) -> list[tuple[str, str]]:
    """The header fields of a message as (name, value): unfolded, decoded, in order.

    Values are UTF-8 (RFC 6532; an invalid byte becomes U+FFFD) with RFC 2047 encoded-words
    decoded, which is the text a filter's pattern is written against.
    """
    if content.startswith((b"\r\n", b"\n")):
        return []
    end = _END_OF_HEADERS.search(content)
    block = (content[: end.start()] if end else content).decode("utf-8", "replace")
    return [(name, decode_words(value)) for name, value in scan(block.split("\n"))]


def unfold(value: str) -> str:
    """A field value on one line (RFC 5322 §2.2.3)."""
    return _FOLD.sub("", value) if "\n" in value else value


def decode_words(value: str) -> str:
    """A value with its RFC 2047 encoded-words decoded; a malformed one stays as written."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return value


def first_values(fields: Iterable[tuple[str, object]]) -> dict[str, str]:
    """Values by lower-cased name, the first occurrence of a repeated name winning."""
    found: dict[str, str] = {}
    for name, value in fields:
        found.setdefault(name.lower(), str(value))
    return found


def first_value(fields: Iterable[tuple[str, str]], name: str) -> str | None:
    """The value of the first field called ``name`` (in any case), None if there is none."""
    wanted = name.lower()
    return next((value for found, value in fields if found.lower() == wanted), None)
