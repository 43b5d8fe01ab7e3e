"""Filters: the operating conditions of priority, prohibited hours, retry and forwarding.

A filter is ``{header, pattern}``: the header name is matched case-insensitively, ``To`` means
the envelope recipient (not the To header, which may list others or nobody), and the pattern
is a Python regular expression *searched* in the header's value (anchor it with ``^...$`` for a
full match; ``(?i)`` makes it case-insensitive). A header the message does not have never
matches.

Values are unfolded and RFC 2047 encoded-words are decoded before matching, so a pattern on
``Subject`` sees the text a person reads, not ``=?UTF-8?B?...?=``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from email.message import Message
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, PlainSerializer

from postline.common.headers import decode_words, first_values, is_field_name, unfold
from postline.common.policy.base import PolicyModel

# Headers that may occur several times in one message, so "the" value is undefined: trace and
# signature fields each hop or signer adds, RFC 5322 §3.6.6 resent blocks, and the fields
# RFC 5322 §3.6 allows any number of (comments, keywords). The design forbids them in filters
# instead of picking one occurrence silently, and ingress does not carry them with a delivery.
REPEATABLE_HEADERS = frozenset(
    {
        "received",
        "x-received",
        "dkim-signature",
        "authentication-results",
        "comments",
        "keywords",
    }
)
REPEATABLE_PREFIXES = ("arc-", "resent-")


def is_repeatable(name: str) -> bool:
    """Whether a header of this name may occur several times in one message."""
    lower = name.lower()
    return lower in REPEATABLE_HEADERS or lower.startswith(REPEATABLE_PREFIXES)


ENVELOPE_RECIPIENT = "to"

Headers = Mapping[str, str] | Message


def _check_header_name(value: object) -> str:
    if not isinstance(value, str) or not is_field_name(value):
        raise ValueError(f"invalid header name {value!r}")
    if is_repeatable(value):
        raise ValueError(
            f"header {value} can occur several times in one message, "
            "so it cannot be used in a filter"
        )
    return value


def compile_pattern(value: object) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a pattern is a regular expression string, not {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


HeaderName = Annotated[str, BeforeValidator(_check_header_name)]
Pattern = Annotated[
    re.Pattern[str],
    BeforeValidator(compile_pattern),
    PlainSerializer(lambda p: p.pattern, return_type=str),
]


class Filter(PolicyModel):
    """``{header, pattern}``. Policy rules (priority, prohibited hours, ...) extend it."""

    header: HeaderName
    pattern: Pattern

    def matches(self, headers: Headers, recipient: str) -> bool:
        """Whether the message with ``headers`` to envelope ``recipient`` matches. Pass
        :func:`normalize_headers` output when evaluating many filters on one message."""
        if not isinstance(headers, NormalizedHeaders):
            headers = normalize_headers(headers)
        return self.matches_normalized(headers, recipient)

    def matches_normalized(self, headers: NormalizedHeaders, recipient: str) -> bool:
        name = self.header.lower()
        value = recipient if name == ENVELOPE_RECIPIENT else headers.get(name)
        return value is not None and self.pattern.search(value) is not None


class NormalizedHeaders(dict[str, str]):
    """Lower-cased header names to unfolded, decoded values (the first occurrence wins)."""


def normalize_headers(headers: Headers | Iterable[tuple[str, str]]) -> NormalizedHeaders:
    if isinstance(headers, NormalizedHeaders):
        return headers
    items: Iterable[tuple[str, Any]]
    if isinstance(headers, Message) or isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    return NormalizedHeaders(
        (name, decode_words(unfold(value))) for name, value in first_values(items).items()
    )


F = TypeVar("F", bound=Filter)


def first_match(filters: Iterable[F], headers: Headers, recipient: str) -> F | None:
    """The first filter that matches, or None."""
    normalized = normalize_headers(headers)
    for candidate in filters:
        if candidate.matches_normalized(normalized, recipient):
            return candidate
    return None
