"""Names in a failure's text — addresses and host names — masked before its words are read.

A recipient may be called ``quota@`` or ``spam@``, a host ``spamfilter.hoster.de`` or
``nosuchuser.mx.example.org``: such names say nothing of why a delivery failed, and a word
the rules look for inside them is no cause (issue #16, round 74, which measured answers
changing under renamed local parts, host names and Message-IDs:
bench/bounce_accuracy/entities.py). Each name keeps its length, its digits and its
punctuation (``@``, ``.``, ``-``) and has its letters made ``x``, so that every place in the
text, every word boundary and the rules' own address and host patterns (``user <?\\S+@\\S+>?
unknown``, ``host \\S+ not found``) read as before; only the words inside the names go.

What is a name is the rules file's ``names`` section: an address (``local@domain``); a
dotted name under a top-level domain it lists (or any two-letter one, a country's); a dotted
name where a reply's grammar puts a host (after "host", before an IP literal:
``antivirus.isp[10.0.0.7]``). A name that holds one of its ``kept`` words is left as it is:
a DNS blocklist's zone (``zen.spamhaus.org``) is the evidence of the refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_BEFORE = r"(?<![\w.@-])"
_AFTER = r"(?![\w-]|\.[\w-])"
# RFC 5322's atext and dots (no "=": "rcpt=<x@y>"-like text keeps its word), then a domain
# or an address literal.
_ADDRESS = r"[a-z0-9!#$%&'*+/?^_`{|}~.-]+@(?:" + _LABEL + r"(?:\." + _LABEL + r")*|\[[^\]\s]*\])"
_LETTERS = str.maketrans(
    "abcdefghijklmnopqrstuvwyz",  # no "x": it stays what it is
    "x" * 25,
)


@dataclass(frozen=True)
class NameMask:
    """The names of a (lowercased) text, found in one pass, with the kept ones left.

    Each kind of name is a pattern with what a text holds wherever it has a name of that
    kind (an address's "@"; the IP literal a host's name comes before; since round 83, the
    end of a name under a top-level domain, ".com" not followed by a letter or a dot and a
    letter, where round 80 looked for any "."). A text is searched only for the kinds it may
    hold: a kind that cannot match anywhere in it changes no match of the others, and most
    texts hold no address, or no IP literal, and many hold dots only in a status code or at
    the end of a sentence."""

    kinds: tuple[tuple[str, re.Pattern[str]], ...]  # (pattern, what it needs), in order
    kept: re.Pattern[str] | None
    # The kinds' patterns as one, by which kinds are searched (made on first use).
    _names: dict[tuple[bool, ...], re.Pattern[str]] = field(default_factory=dict, compare=False)

    def mask(self, text: str) -> str:
        if "." not in text and "@" not in text:
            return text
        held = tuple([needs.search(text) is not None for _, needs in self.kinds])
        if not any(held):
            return text
        names = self._names.get(held)
        if names is None:
            searched = [pattern for (pattern, _), h in zip(self.kinds, held, strict=True) if h]
            names = self._names[held] = re.compile("|".join(searched))
        return names.sub(self._masked, text)

    def _masked(self, match: re.Match[str]) -> str:
        name = match.group(0)
        if self.kept is not None and self.kept.search(name):
            return name
        return name.translate(_LETTERS)


def name_mask(raw: object) -> NameMask | None:
    """The rules file's ``names`` section: ``top_level`` (the top-level domains, other than
    two-letter ones, under which a dotted name is a host's), ``kept`` (words that keep a
    name as it is)."""
    if not isinstance(raw, dict) or not raw.get("top_level"):
        return None
    top = str(raw["top_level"])
    dotted = _LABEL + r"(?:\." + _LABEL + r")*\.[a-z][a-z0-9-]*"
    # What every name of a kind ends with or comes before (the kind's own subpattern, with
    # what follows it): a text without it has no name of that kind.
    top_end = r"\.(?:[a-z]{2}|" + top + r")" + _AFTER
    ip_literal = r"[\[(](?:ipv4:)?\d{1,3}\."
    kinds = (
        (_ADDRESS, "@"),
        (_BEFORE + _LABEL + r"(?:\." + _LABEL + r")*" + top_end, top_end),
        (r"(?<=\bhost )" + dotted + _AFTER, "host "),
        (_BEFORE + dotted + r"(?=\s?" + ip_literal + ")", ip_literal),
    )
    kept = raw.get("kept")
    return NameMask(
        tuple((pattern, re.compile(needs)) for pattern, needs in kinds),
        re.compile(str(kept)) if kept else None,
    )
