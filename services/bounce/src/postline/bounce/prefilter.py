"""What a pattern cannot match without, so that most searches that would find nothing are
never run.

The classifier asks of each failure whether each reason's words occur in it: some four
hundred searches of a short text, of which a handful find something. Every match of most
patterns contains one of a few fixed strings (``mailbox (is )?full|over quota`` one of
"mailbox " and "over quota"); a pattern is searched only when the text holds a run of four
characters of one of them (its *grams*, read once per text). Only whether a pattern matches
is ever read, so leaving out one that cannot match changes no answer.

The patterns are read as Python's ``re`` reads them, with no flags (they are matched against
lowercased text); a construct this reader does not know makes the pattern one that is
always searched, never one that is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

GRAM = 4
Grams = frozenset[tuple[str, ...]]
Key = TypeVar("Key", bound=Hashable)

# "?", "*", "+", "{m}", "{m,}", "{,n}", "{m,n}", and what makes one lazy.
_QUANTIFIER = re.compile(r"(?:[?*+]|\{(\d*)(?:,\d*)?\})\??")
_CLASS_ESCAPES = frozenset("sSdDwW")  # one character of a class
_ZERO_WIDTH_ESCAPES = frozenset("bBAZ")
_LOOK_AROUND = ("?=", "?!", "?<=", "?<!")
# The letters most frequent in English text, most frequent first: a gram of rare letters
# rules out more texts.
_COMMON = " etaoinsrhldcumfpgwyb"


def grams_of(text: str) -> set[tuple[str, ...]]:
    """Every run of ``GRAM`` characters in the text."""
    return set(zip(*(text[i:] for i in range(GRAM)), strict=False))


def alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern (``a|(b|c)d`` -> ``a``, ``(b|c)d``)."""
    found: list[str] = []
    depth, start, escaped, in_class = 0, 0, False, False
    for i, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            found.append(pattern[start:i])
            start = i + 1
    found.append(pattern[start:])
    return found


def needed_grams(pattern: str) -> Grams | None:
    """Grams one of which every text the pattern matches has (one of each string it cannot
    match without), or None when there are none to tell: the pattern is always searched."""
    strings = required(pattern)
    if strings is None or min(map(len, strings)) < GRAM:
        return None
    return frozenset(_rarest_gram(s) for s in strings)


def required(pattern: str) -> frozenset[str] | None:
    """Strings one of which every match of the pattern contains; None when it has none
    (or uses what this reader does not read)."""
    found: set[str] = set()
    for branch in alternatives(pattern):
        strings = _required_in_branch(branch)
        if strings is None:
            return None
        found |= strings
    return frozenset(found)


def _required_in_branch(branch: str) -> frozenset[str] | None:
    """The best of the strings a branch (no top-level "|") cannot match without: a run of
    literal characters it must match, or a group every branch of which has some."""
    candidates: list[frozenset[str]] = []
    run: list[str] = []
    i = 0
    while i < len(branch):
        char = branch[i]
        literal = ""
        group: frozenset[str] | None = None
        if char == "\\":
            escaped = branch[i + 1 : i + 2]
            if escaped.isalnum() and escaped not in _CLASS_ESCAPES | _ZERO_WIDTH_ESCAPES:
                return None  # \x41, \n, \1...: not read
            if not escaped:
                return None
            literal = "" if escaped.isalnum() else escaped
            i += 2
        elif char == "[":
            end = _class_end(branch, i)
            if end < 0:
                return None
            i = end + 1
        elif char == "(":
            end = _group_end(branch, i)
            if end < 0:
                return None
            inner = branch[i + 1 : end]
            i = end + 1
            if inner.startswith("?P<") and ">" in inner:
                group = required(inner.partition(">")[2])
            elif inner.startswith("?:"):
                group = required(inner[2:])
            elif inner.startswith(_LOOK_AROUND):
                pass  # zero width: it requires nothing where it stands
            elif inner.startswith("?"):
                return None  # flags, comments, conditionals: not read
            else:
                group = required(inner)
        elif char in ".^$":
            i += 1
        elif char in "*+?{})|":
            return None  # a quantifier with nothing to repeat, or a stray bracket
        else:
            literal = char
            i += 1
        least, repeated = 1, False
        quantifier = _QUANTIFIER.match(branch, i)
        if quantifier is not None:
            token = quantifier.group(0).rstrip("?") or "?"
            least = 0 if token in ("?", "*") else 1 if token == "+" else int(quantifier[1] or 0)
            repeated = True
            i = quantifier.end()
        if literal and least > 0:
            run.append(literal)
            if not repeated:
                continue
        if run:
            candidates.append(frozenset({"".join(run)}))
        # A repeated character ends the run before it and starts the next one.
        run = [literal] if literal and least > 0 else []
        if group is not None and least > 0:
            candidates.append(group)
    if run:
        candidates.append(frozenset({"".join(run)}))
    if not candidates:
        return None
    return max(candidates, key=lambda strings: (min(map(len, strings)), -len(strings)))


def _class_end(pattern: str, start: int) -> int:
    """The index of the "]" that closes the class opened at ``start`` (-1: none)."""
    i = start + 1
    if pattern[i : i + 1] == "^":
        i += 1
    if pattern[i : i + 1] == "]":
        i += 1  # a "]" first in a class is one of its characters
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i
        i += 1
    return -1


def _group_end(pattern: str, start: int) -> int:
    """The index of the ")" that closes the group opened at ``start`` (-1: none)."""
    depth = 0
    i = start
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(pattern, i)
            if i < 0:
                return -1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _commonness(char: str) -> int:
    rank = _COMMON.find(char)
    return len(_COMMON) - rank if rank >= 0 else 0


def _rarest_gram(string: str) -> tuple[str, ...]:
    pieces = [tuple(string[i : i + GRAM]) for i in range(len(string) - GRAM + 1)]
    return min(pieces, key=lambda piece: sum(map(_commonness, piece)))


def gate(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """A search for the strings one of which every match of the pattern contains, in
    lowercased text; None when there are none to tell.

    It rules a text out for a pattern written for lowercased text, and for a pattern
    compiled with re.IGNORECASE in ASCII text only: Unicode's case rules match the Kelvin
    sign to "k" and "ſ" to "s", which lowercasing does not."""
    strings = required(pattern.pattern)
    if strings is None or not all(s.isascii() for s in strings):
        return None
    lowered = {s.lower() for s in strings}
    # A string that holds another is in a text only where that one is.
    fewest = sorted(s for s in lowered if not any(t != s and t in s for t in lowered))
    return re.compile("|".join(map(re.escape, fewest)))


class Index(Generic[Key]):
    """Which of many patterns a text may match: those that need no gram, and those one of
    whose grams the text has. Patterns are named by keys (a reason and a word's place)."""

    def __init__(self, needs: Iterable[tuple[Key, Grams | None]]) -> None:
        self._always: list[Key] = []
        self._by_gram: dict[tuple[str, ...], list[Key]] = {}
        for key, grams in needs:
            if grams is None:
                self._always.append(key)
            for gram in grams or ():
                self._by_gram.setdefault(gram, []).append(key)
        self._grams = frozenset(self._by_gram)

    def candidates(self, text_grams: set[tuple[str, ...]]) -> set[Key]:
        found = set(self._always)
        # The text's grams are fewer than the patterns': the intersection runs over them.
        for gram in text_grams.intersection(self._grams):
            found.update(self._by_gram[gram])
        return found
