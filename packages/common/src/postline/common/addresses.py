"""Mail address rules: parsing, validation, the wire form and case-insensitive comparison.

Postline follows the relaxed rules of the mail cloud it replaces (DESIGN.md "Addresses"), which
are looser than RFC 5321/5322 in three ways that real senders depend on:

* an unquoted local part may hold dots in places the RFCs forbid (``irregular..pattern``,
  ``a.``), as some mobile carriers issued such mailboxes; it is accepted and quoted when sent
  (``"irregular..pattern"@example.test``), which is its RFC 5321 §4.1.2 spelling;
* ``\\`` is an ordinary unquoted local-part character (it is not in RFC 5322 §3.2.3 ``atext``,
  so such local parts are quoted when sent, too);
* there is no local-part, domain or label length limit (RFC 5321 §4.5.3.1.1-3), only that
  ``MAIL FROM:<address>`` must fit a 1000-octet SMTP line, see `MAX_ADDRESS_LENGTH`.

Decisions for the edge cases the design leaves open:

* A quoted local part is the whole local part (``"a b"@x``); mixed forms such as ``"a".b@x``
  (RFC 5322 ``obs-local-part``) are rejected. Inside quotes any printable US-ASCII character or
  space is allowed, ``"`` and ``\\`` escaped with ``\\`` (RFC 5321 §4.1.2 ``qtextSMTP`` /
  ``quoted-pairSMTP``). Control characters are rejected even inside quotes: they cannot travel
  on an SMTP line safely.
* Outside quotes a ``\\`` is a literal character, not an escape.
* The empty local part (also ``""@x``), a missing ``@``, whitespace or control characters
  outside quotes, and any non-ASCII character are invalid. Internationalised addresses
  (SMTPUTF8, RFC 6531) are not supported; a domain must be given in its ``xn--`` form.
* Address literals (``user@[192.0.2.1]``, RFC 5321 §4.1.3) are rejected: the domain rules of
  the design allow only alphanumerics, ``.``, ``-`` and ``_``. A trailing root dot
  (``example.test.``) is rejected like any trailing dot.
* `parse_address` does not strip whitespace or angle brackets; callers holding user input strip
  it, callers holding an SMTP ``MAIL``/``RCPT`` argument use `split_path` and `parse_path`.
* Comparison ignores case in the whole address, local part included (the design's rule, though
  RFC 5321 §2.4 lets a receiving host treat the local part case-sensitively).

Every `AddressError.reason` is a short, single-line US-ASCII text that never echoes the input
beyond one character, so it can go into an SMTP ``553 5.1.3`` reply or a JSON error as is.

All functions are pure and run on the SMTP hot path: the common case is a few precompiled
regular expressions; the slower character scans run only to explain a rejection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "Address",
    "AddressError",
    "is_valid_address",
    "parse_address",
    "parse_path",
    "recipient_domain",
    "split_path",
]

# The design's only length limit is "SMTP's 1000-byte line" (the text-line limit of RFC 5321
# §4.5.3.1.6). The longest command carrying an address is ``MAIL FROM:<address>`` CRLF, so the
# wire form of an address may use what is left of the line. (The 512-octet command line of
# §4.5.3.1.4 is the minimum a server must accept; §4.5.3.1 asks for no fixed limits.)
MAX_ADDRESS_LENGTH = 1000 - len("MAIL FROM:<>\r\n")

# Unescaping at most halves the quoted text, so anything longer than this cannot produce an
# acceptable address; checking it first bounds the work spent on hostile input.
_MAX_INPUT_LENGTH = 2 * MAX_ADDRESS_LENGTH + 2

# RFC 5322 §3.2.3 atext: the characters of an RFC 5321 Dot-string atom.
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
# The design's unquoted local-part characters: atext plus the backslash and the dot.
_UNQUOTED_CHARS = _ATEXT + r"\\."

_UNQUOTED_LOCAL = re.compile(rf"[{_ATEXT}\\][{_UNQUOTED_CHARS}]*")
# RFC 5321 §4.1.2 Dot-string: what may go on the wire without quotes.
_DOT_STRING = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
# RFC 5321 §4.1.2 Quoted-string at the start of the input, and the quoted-pair inside it.
_QUOTED_LOCAL = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*)"')
_QUOTED_PAIR = re.compile(r"\\([\x20-\x7e])")
# What a local part may hold once unquoted: printable US-ASCII and space.
_LOCAL_VALUE = re.compile(r"[\x20-\x7e]+")
# Characters that must be escaped inside a quoted local part (RFC 5321 §4.1.2 qtextSMTP).
_NEEDS_ESCAPE = re.compile(r'(["\\])')

_LABEL = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DOMAIN_CHARS = re.compile(r"[A-Za-z0-9._-]+")
# RFC 5321 §4.1.2 A-d-l: the obsolete source route before the mailbox in a path.
_SOURCE_ROUTE = re.compile(rf"@{_DOMAIN.pattern}(?:,@{_DOMAIN.pattern})*")


class AddressError(ValueError):
    """An address or path that Postline does not accept; `reason` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class Address:
    """A mail address; equal to another when they differ only in letter case.

    `local` is the local part unquoted and unescaped (``a"b`` for ``"a\\"b"@x``), `domain` the
    domain as given. Constructing an `Address` directly validates both, as `parse_address` does.
    """

    local: str
    domain: str

    def __post_init__(self) -> None:
        _check_local_value(self.local)
        _check_domain(self.domain)
        if len(self._wire) > MAX_ADDRESS_LENGTH:
            raise AddressError(_too_long())

    @cached_property
    def needs_quoting(self) -> bool:
        """Whether the local part is not an RFC 5321 Dot-string and must be sent quoted."""
        return _DOT_STRING.fullmatch(self.local) is None

    @cached_property
    def domain_lower(self) -> str:
        """The domain in lower case, the form used for routing and per-domain policy."""
        return self.domain.lower()

    @cached_property
    def key(self) -> str:
        """The case-insensitive comparison key: the lowercased wire form (itself parseable)."""
        return self._wire.lower()

    @cached_property
    def _wire(self) -> str:
        if not self.needs_quoting:
            return f"{self.local}@{self.domain}"
        escaped = _NEEDS_ESCAPE.sub(r"\\\1", self.local)
        return f'"{escaped}"@{self.domain}'

    def smtp_form(self) -> str:
        """The address as it goes on the wire, the local part quoted only when needed."""
        return self._wire

    def __str__(self) -> str:
        return self._wire

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Address):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def parse_address(text: str) -> Address:
    """Parse ``local@domain`` (no angle brackets, no surrounding whitespace) into an `Address`.

    Raises `AddressError` for anything the design's rules do not accept.
    """
    if not text:
        raise AddressError("address is empty")
    if len(text) > _MAX_INPUT_LENGTH:
        raise AddressError(_too_long())
    if not text.isascii():
        raise AddressError(_non_ascii(text))
    if text[0] == '"':
        local, domain = _split_quoted(text)
    else:
        local, domain = _split_unquoted(text)
    return Address(local, domain)


def is_valid_address(text: str) -> bool:
    """Whether `parse_address` accepts `text`."""
    try:
        parse_address(text)
    except AddressError:
        return False
    return True


def address_key(text: str) -> str:
    """The case-insensitive key of an address given as text (the suppression list's form):
    surrounding spaces and angle brackets dropped, then `Address.key`, so ``"a..b"@x`` and
    ``a..b@X`` are one address. Text that is no address under the rules is only lowercased:
    a key is still needed for what a bounce mail or an operator names."""
    text = text.strip().strip("<>").strip()
    try:
        return parse_address(text).key
    except AddressError:
        return text.lower()


def recipient_domain(text: str) -> str:
    """The lowercased domain of the address `text`; raises `AddressError` if it is invalid."""
    return parse_address(text).domain_lower


def split_path(argument: str) -> tuple[str, str]:
    """Split a ``MAIL FROM:``/``RCPT TO:`` argument into the ``<path>`` and its ESMTP parameters.

    ``'<"a b"@x> SIZE=10'`` gives ``('<"a b"@x>', 'SIZE=10')``. The closing ``>`` is found
    outside quotes, since a quoted local part may hold ``>`` and spaces (RFC 5321 §4.1.2).
    """
    text = argument.lstrip(" \t")
    if not text.startswith("<"):
        raise AddressError(_NO_BRACKETS)
    end = _closing_bracket(text)
    rest = text[end + 1 :]
    if rest and rest[0] not in " \t":
        raise AddressError("unexpected text after the closing '>'")
    return text[: end + 1], rest.strip(" \t")


def parse_path(text: str, *, allow_null: bool = False) -> Address | None:
    """Parse an SMTP path ``<local@domain>`` (RFC 5321 §4.1.2), without ESMTP parameters.

    The null path ``<>`` gives ``None`` when `allow_null` (a ``MAIL FROM`` reverse-path,
    RFC 5321 §4.5.5), else an error. A source route (``<@a,@b:user@d>``) is dropped, as
    RFC 5321 §4.1.2 says it SHOULD be ignored. Spaces or tabs around the path are tolerated
    (``MAIL FROM: <a@b>`` is a common client bug); ``<Postmaster>`` without a domain is
    rejected, as Postline has no local mailboxes.
    """
    path = text.strip(" \t")
    if not (path.startswith("<") and path.endswith(">")):
        raise AddressError(_NO_BRACKETS)
    inner = path[1:-1]
    if not inner:
        if allow_null:
            return None
        raise AddressError("null path <> is not allowed here")
    if inner[0] == "@":
        inner = _drop_source_route(inner)
    return parse_address(inner)


_NO_BRACKETS = "path must be enclosed in angle brackets (RFC 5321 4.1.2)"


def _split_unquoted(text: str) -> tuple[str, str]:
    local, at, domain = text.partition("@")
    if not at:
        raise AddressError("address has no '@'")
    if not local:
        raise AddressError("local part is empty")
    if _UNQUOTED_LOCAL.fullmatch(local) is None:
        raise AddressError(_explain_unquoted(local))
    if "@" in domain:
        raise AddressError("address has more than one '@' (a local part with '@' must be quoted)")
    return local, domain


def _explain_unquoted(local: str) -> str:
    if local[0] == ".":
        return "local part must not start with '.'"
    bad = next(c for c in local if not _UNQUOTED_LOCAL.fullmatch("a" + c))
    if bad == "<" or bad == ">":
        return "angle brackets are not part of the address"
    if not bad.isprintable() or bad.isspace():
        return f"local part contains {_describe(bad)} outside quotes"
    return f"local part contains {_describe(bad)}, which is only allowed inside quotes"


def _split_quoted(text: str) -> tuple[str, str]:
    match = _QUOTED_LOCAL.match(text)
    if match is None:
        raise AddressError(_explain_quoted(text))
    rest = text[match.end() :]
    if not rest:
        raise AddressError("address has no '@'")
    if rest[0] != "@":
        raise AddressError("a quoted local part must be the whole local part, followed by '@'")
    local = _QUOTED_PAIR.sub(r"\1", match.group(1))
    if not local:
        raise AddressError("local part is empty")
    return local, rest[1:]


def _explain_quoted(text: str) -> str:
    # Only reached when the quoted string is not well formed; find the first reason why.
    i = 1
    while i < len(text):
        char = text[i]
        if char == '"':
            break
        if char == "\\":
            i += 1
            if i == len(text):
                break
            char = text[i]
        if not char.isprintable():
            return f"local part contains {_describe(char)}, even inside quotes"
        i += 1
    return "quoted local part has no closing '\"'"


def _check_local_value(local: str) -> None:
    if not local:
        raise AddressError("local part is empty")
    if _LOCAL_VALUE.fullmatch(local) is None:
        if not local.isascii():
            raise AddressError(_non_ascii(local))
        bad = next(c for c in local if not _LOCAL_VALUE.fullmatch(c))
        raise AddressError(f"local part contains {_describe(bad)}, even inside quotes")


def _check_domain(domain: str) -> None:
    if _DOMAIN.fullmatch(domain) is None:
        raise AddressError(_explain_domain(domain))


def _explain_domain(domain: str) -> str:
    if not domain:
        return "domain is empty"
    if not domain.isascii():
        return _non_ascii(domain)
    if domain[0] == "[":
        return "address literals are not accepted as a domain"
    if _DOMAIN_CHARS.fullmatch(domain) is None:
        bad = next(c for c in domain if not _DOMAIN_CHARS.fullmatch(c))
        return f"domain contains {_describe(bad)}"
    if domain[0] == ".":
        return "domain must not start with '.'"
    if domain[-1] == ".":
        return "domain must not end with '.'"
    if ".." in domain:
        return "domain must not contain '..'"
    return "each domain label must start with a letter or digit"


def _drop_source_route(inner: str) -> str:
    route, colon, mailbox = inner.partition(":")
    if not colon or _SOURCE_ROUTE.fullmatch(route) is None:
        raise AddressError("malformed source route in path")
    return mailbox


def _closing_bracket(text: str) -> int:
    quoted = False
    i = 1
    while i < len(text):
        char = text[i]
        if char == "\\" and quoted:
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return i
        i += 1
    raise AddressError("path has no closing '>'")


def _non_ascii(text: str) -> str:
    bad = next(c for c in text if not c.isascii())
    return (
        f"address contains the non-ASCII character {_describe(bad)}; "
        "internationalised addresses (SMTPUTF8) are not supported"
    )


def _too_long() -> str:
    return f"address is longer than {MAX_ADDRESS_LENGTH} characters (SMTP line limit)"


def _describe(char: str) -> str:
    # Reasons go into SMTP replies: show a character only when it is printable ASCII.
    if char.isascii() and char.isprintable() and char != " ":
        return f"'{char}'"
    return f"U+{ord(char):04X}"
