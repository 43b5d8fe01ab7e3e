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
# A gram is read as the integer its four UTF-8 bytes make (round 83): a set of integers is
# made and searched in about two thirds of the instructions a set of 4-tuples of characters
# takes. Only grams of ASCII characters are indexed (``_gram``), and in UTF-8 a run of four
# ASCII bytes is always a run of four ASCII characters of the text (the bytes of every other
# character are 0x80 or more), so a text holds such a gram exactly when its bytes do.
# memoryview's format "I" reads four bytes as one integer.
Gram = int
# Pairs of grams: every text the pattern matches has both grams of one of its pairs.
Grams = frozenset[tuple[Gram, Gram]]
Key = TypeVar("Key", bound=Hashable)

# "?", "*", "+", "{m}", "{m,}", "{,n}", "{m,n}", and what makes one lazy.
_QUANTIFIER = re.compile(r"(?:[?*+]|\{(\d*)(?:,\d*)?\})\??")
_CLASS_ESCAPES = frozenset("sSdDwW")  # one character of a class
_ZERO_WIDTH_ESCAPES = frozenset("bBAZ")
_LOOK_AROUND = ("?=", "?!", "?<=", "?<!")
# The letters most frequent in English text, most frequent first: a gram of rare letters
# rules out more texts.
_COMMON = " etaoinsrhldcumfpgwyb"


def grams_of(text: str) -> set[Gram]:
    """Every run of ``GRAM`` bytes of the text's UTF-8, as an integer (see ``Gram``)."""
    data = text.encode("utf-8", "surrogatepass")
    found: set[Gram] = set()
    for offset in range(GRAM):
        end = offset + (len(data) - offset) // GRAM * GRAM
        found.update(memoryview(data[offset:end]).cast("I"))
    return found


def _gram(chars: str) -> Gram | None:
    """The gram of ``GRAM`` ASCII characters (None for others: see ``Gram``)."""
    if len(chars) != GRAM or not chars.isascii():
        return None
    return memoryview(chars.encode()).cast("I")[0]


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
    """Two grams of each string the pattern cannot match without (every text it matches
    has both of one pair), or None when there are none to tell: the pattern is always
    searched. Two grams tell more than one: "mail" is in most bounces, "mail" and "rror"
    in few."""
    strings = required(pattern)
    if strings is None or min(map(len, strings)) < GRAM:
        return None
    pairs = {_rarest_grams(s) for s in strings}
    if None in pairs:
        return None  # a string with no run of four ASCII characters
    return frozenset(pair for pair in pairs if pair is not None)


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


def _rarest_grams(string: str) -> tuple[Gram, Gram] | None:
    """The string's rarest gram and its rarest one that does not overlap it (if none, the
    rarest other one; if none, the same); None when no run of its characters is ASCII."""
    grams = {
        i: gram
        for i in range(len(string) - GRAM + 1)
        if (gram := _gram(string[i : i + GRAM])) is not None
    }
    if not grams:
        return None
    starts = sorted(grams, key=lambda i: sum(map(_commonness, string[i : i + GRAM])))
    first = starts[0]
    apart = [i for i in starts[1:] if abs(i - first) >= GRAM] or starts[1:] or [first]
    return grams[first], grams[apart[0]]


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
    """Which of many patterns (written for lowercased text) a text may match: those one of
    whose pairs of grams the text has, those one of whose short strings (fewer characters
    than a gram) it has, and those with no string to tell. Patterns are named by keys."""

    def __init__(self, patterns: Iterable[tuple[Key, str]]) -> None:
        self._always: list[Key] = []
        # short string -> the keys of the patterns that hold it (each string looked for once)
        self._by_string: dict[str, list[Key]] = {}
        self._by_gram: dict[Gram, list[tuple[Key, Gram]]] = {}  # gram -> (key, its pair's other)
        for key, pattern in patterns:
            pairs = needed_grams(pattern)
            strings = required(pattern) if pairs is None else None
            if pairs is not None:
                for first, second in pairs:
                    self._by_gram.setdefault(first, []).append((key, second))
            elif strings is not None:
                for string in strings:
                    self._by_string.setdefault(string, []).append(key)
            else:
                self._always.append(key)
        self._grams = frozenset(self._by_gram)

    def candidates(self, text: str, text_grams: set[Gram]) -> set[Key]:
        found = set(self._always)
        for string, keys in self._by_string.items():
            if string in text:
                found.update(keys)
        # The text's grams are fewer than the patterns': the intersection runs over them.
        for gram in text_grams.intersection(self._grams):
            for key, other in self._by_gram[gram]:
                if other in text_grams:
                    found.add(key)
        return found


def ruled_out(needs: re.Pattern[str] | None, text: str) -> bool:
    """Whether a pattern compiled with re.IGNORECASE cannot match the text, by its gate
    (``gate``): read only in ASCII text."""
    return needs is not None and text.isascii() and needs.search(text.lower()) is None
