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


def reply_of(text: str) -> tuple[int, str]:
    """The first SMTP reply code in a text (0 when none) and its first enhanced status (''
    when none), or a later status that names a subject where the first names none (RFC 3463
    X.0.X, "other or undefined"): a relay's own "5.0.350 Remote server returned error code
    550 5.1.1" quotes the remote's. A code written with its status is read once for both."""
    match = _CODE_WITH_ENHANCED.search(text)
    if match:
        return int(match.group(1)), _specific(match.group(2), text, match.end())
    return _code_alone(text), _status_alone(text)


def enhanced_status(text: str) -> str:
    """The enhanced status of ``reply_of``."""
    return reply_of(text)[1]


def reply_code(text: str) -> int:
    """The reply code of ``reply_of``."""
    return reply_of(text)[0]


def _status_alone(text: str) -> str:
    match = ENHANCED.search(text)
    if match:
        return _specific(".".join(match.groups()), text, match.end())
    match = QMAIL_ENHANCED.search(text)
    return match.group(1) if match else ""


# The words between a relay's own status and the remote server's that it quotes.
_QUOTES = re.compile(r"(returned|said|responded|replied|error code)[^\n]*$", re.I)


def _specific(found: str, text: str, end: int) -> str:
    if found.split(".")[1] != "0":
        return found
    later = ENHANCED.search(text, end, end + 80)
    if later is None or later.group(2) == "0" or later.group(1) != found[0]:
        return found
    return ".".join(later.groups()) if _QUOTES.search(text, end, later.start()) else found


def _code_alone(text: str) -> int:
    match = REPLY_CODE.search(text)
    return int(match.group(1)) if match else 0
