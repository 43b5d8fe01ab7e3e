"""What a submitter asks of delivery status notifications (RFC 3461): parsing and carrying.

The relay reads MAIL's ``RET`` and ``ENVID`` and RCPT's ``NOTIFY`` and ``ORCPT``; the send API
takes the same values as JSON fields. Both end in a ``DsnRequest`` on each delivery, which the
scheduler reads when it decides which notices to send (``postline.scheduler.notices``).

Every parser raises ``DsnError`` with a sentence a client can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from postline.v1 import delivery_pb2

__all__ = [
    "ENVID_MAX",
    "NOTIFY_VALUES",
    "ORCPT_MAX",
    "DsnError",
    "dsn_request",
    "parse_envid",
    "parse_notify",
    "parse_orcpt",
    "parse_ret",
    "xtext_decode",
    "xtext_encode",
]

# RFC 3461 §4.2 and §4.4: an ORCPT value is at most 500 characters, an ENVID at most 100.
ORCPT_MAX = 500
ENVID_MAX = 100
NOTIFY_VALUES = ("SUCCESS", "FAILURE", "DELAY")
NEVER = "NEVER"
RET_VALUES = {"FULL": delivery_pb2.DSN_RETURN_FULL, "HDRS": delivery_pb2.DSN_RETURN_HEADERS}

# RFC 3461 §4: xtext is printable US-ASCII except "+" and "=", plus "+XX" (two upper-case
# hex digits) for any other octet.
_XCHAR = re.compile(r"[\x21-\x2a\x2c-\x3c\x3e-\x7e]")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
# RFC 3461 §4.2: addr-type is an atom (RFC 5322 atext).
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")


class DsnError(ValueError):
    """A DSN parameter that cannot be taken; ``reason`` is what to tell the client."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def xtext_decode(text: str, name: str = "xtext") -> str:
    """The value an xtext stands for. Raises ``DsnError`` for a bad character or ``+XX``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "+":
            hexchar = _HEXCHAR.match(text, i)
            if hexchar is None:
                raise DsnError(name, f"'+' at {i + 1} must be followed by two hex digits (0-9A-F)")
            out.append(chr(int(hexchar.group(1), 16)))
            i += 3
            continue
        if not _XCHAR.fullmatch(char):
            raise DsnError(name, f"character {char!r} at {i + 1} must be written as +XX (xtext)")
        out.append(char)
        i += 1
    return "".join(out)


def xtext_encode(value: str) -> str:
    """``value`` (US-ASCII) as xtext: "+", "=" and anything not printable become ``+XX``."""
    return "".join(c if _XCHAR.fullmatch(c) else f"+{ord(c):02X}" for c in value)


def parse_notify(values: Iterable[str], name: str = "NOTIFY") -> tuple[bool, bool, bool, bool]:
    """(never, success, failure, delay) of a NOTIFY list: ``NEVER`` alone, or any of SUCCESS,
    FAILURE and DELAY (RFC 3461 §4.1), each at most once; case-insensitive."""
    words = [v.strip().upper() for v in values]
    if not words or any(not w for w in words):
        raise DsnError(name, "expected NEVER or a list of SUCCESS, FAILURE, DELAY")
    if NEVER in words:
        if len(words) > 1:
            raise DsnError(name, "NEVER cannot be combined with other values")
        return True, False, False, False
    unknown = [w for w in words if w not in NOTIFY_VALUES]
    if unknown:
        raise DsnError(name, f"unknown value {unknown[0][:20]!r}: expected SUCCESS, FAILURE, DELAY")
    if len(set(words)) != len(words):
        raise DsnError(name, "a value is repeated")
    return False, "SUCCESS" in words, "FAILURE" in words, "DELAY" in words


def parse_orcpt(value: str, name: str = "ORCPT", *, xtext: bool = True) -> str:
    """An ORCPT as ``addr-type;address`` (RFC 3461 §4.2), the address xtext-decoded (SMTP)
    or as given (the send API, where a bare address means ``rfc822``)."""
    if len(value) > ORCPT_MAX:
        raise DsnError(name, f"longer than {ORCPT_MAX} characters")
    addr_type, semicolon, address = value.partition(";")
    if not semicolon:
        if xtext:
            raise DsnError(name, "expected addr-type;address, e.g. rfc822;user@example.com")
        addr_type, address = "rfc822", value
    if not _ADDR_TYPE.fullmatch(addr_type):
        raise DsnError(name, "the address type must be an atom such as rfc822")
    decoded = xtext_decode(address, name) if xtext else address
    if not decoded or any(not 0x20 < ord(c) < 0x7F for c in decoded):
        raise DsnError(name, "the address must be printable US-ASCII without spaces")
    if addr_type.lower() == "rfc822":
        addr_type = "rfc822"
    return f"{addr_type};{decoded}"


def parse_ret(value: str, name: str = "RET") -> delivery_pb2.DsnReturn.ValueType:
    """FULL or HDRS (RFC 3461 §4.3), case-insensitive."""
    found = RET_VALUES.get(value.strip().upper())
    if found is None:
        raise DsnError(name, "expected FULL or HDRS")
    return found


def parse_envid(value: str, name: str = "ENVID", *, xtext: bool = True) -> str:
    """An envelope id (RFC 3461 §4.4): xtext-decoded (SMTP) or as given, printable US-ASCII."""
    if len(value) > ENVID_MAX:
        raise DsnError(name, f"longer than {ENVID_MAX} characters")
    decoded = xtext_decode(value, name) if xtext else value
    if not decoded or any(not 0x20 <= ord(c) < 0x7F for c in decoded):
        raise DsnError(name, "must be printable US-ASCII")
    return decoded


def dsn_request(
    *,
    notify: tuple[bool, bool, bool, bool] | None = None,
    orcpt: str = "",
    ret: delivery_pb2.DsnReturn.ValueType = delivery_pb2.DSN_RETURN_UNSPECIFIED,
    envid: str = "",
) -> delivery_pb2.DsnRequest | None:
    """The request a delivery carries; None when nothing was asked."""
    if notify is None and not orcpt and not ret and not envid:
        return None
    request = delivery_pb2.DsnRequest(original_recipient=orcpt, ret=ret, envelope_id=envid)
    if notify is not None:
        never, success, failure, delay = notify
        request.notify_given = True
        request.notify_never = never
        request.notify_success = success
        request.notify_failure = failure
        request.notify_delay = delay
    return request
