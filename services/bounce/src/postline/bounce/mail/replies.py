"""Reading an SMTP reply out of a diagnostic text: reply code, enhanced status, command."""

from __future__ import annotations

import re

# An enhanced status (RFC 3463) not part of an IP address or a version number.
ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
# qmail writes the enhanced status as "#5.1.1" or "(#5.1.1)".
QMAIL_ENHANCED = re.compile(r"#([245]\.\d{1,3}\.\d{1,3})")
# A reply code where a reply starts: at a line start, after "said:"-like words, before an
# enhanced status, or as "550-" continuation.
REPLY_CODE = re.compile(
    r"(?:^|[\s:(\[\"'#]|said:\s*|returned:?\s*)([45][0-5]\d)"
    r"(?=[ \t-][^\d]|[ \t]*$|[ \t]+[245]\.\d)",
    re.MULTILINE,
)
_CODE_WITH_ENHANCED = re.compile(
    r"(?<![\d.])([245][0-5]\d)[ -]+(?:#)?([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)"
)


def enhanced_status(text: str) -> str:
    """The first enhanced status in a text ('' when none)."""
    match = _CODE_WITH_ENHANCED.search(text)
    if match:
        return match.group(2)
    match = ENHANCED.search(text)
    if match:
        return ".".join(match.groups())
    match = QMAIL_ENHANCED.search(text)
    return match.group(1) if match else ""


def reply_code(text: str) -> int:
    """The first SMTP reply code in a text (0 when none)."""
    match = _CODE_WITH_ENHANCED.search(text)
    if match:
        return int(match.group(1))
    match = REPLY_CODE.search(text)
    return int(match.group(1)) if match else 0
