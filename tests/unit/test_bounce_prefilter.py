"""The bounce classifier's prefilter (``postline.bounce.prefilter``): it may rule a text out
for a pattern only when the pattern cannot match it, so it never changes an answer.

How fast it makes the classifier is measured in bench/ (bench/README.md, "Round 16").
"""

from __future__ import annotations

import re

import pytest

from postline.bounce.classify import Failure, reply_rules
from postline.bounce.mail.mime import Parts, read_message
from postline.bounce.mail.textformat import lowered_twin, mail_formats
from postline.bounce.prefilter import _gram, gate, grams_of, needed_grams, required, ruled_out
from tests.conftest import ROOT

CORPUS = ROOT.parent / "shared" / "corpus" / "bounces" / "sisimai" / "eml"


@pytest.mark.parametrize(
    ("pattern", "strings"),
    [
        ("mailbox (is )?full|over quota", {"mailbox ", "over quota"}),
        # A group every branch of which has a string counts; an optional one does not.
        ("(user|mailbox) (does not|doesn.t) exist", {" exist"}),
        ("(user|mailbox) (does not|doesn.t) be", {"does not", "doesn"}),
        ("recip(ient)?notfound", {"notfound"}),
        # Escaped characters are themselves; classes, boundaries and look-arounds end a run.
        (r"\bmail\.local:? .{0,30}unknown user", {"unknown user"}),
        (r"a(?<!sender a)ddress <?[^\s<>@]+@", {"ddress "}),
        ("(?P<addr>x@y)z", {"x@y"}),
        # A repeated character ends one run and starts the next with itself.
        ("x{2,3}yz", {"xyz"}),
        ("ab?cd", {"cd"}),
        # Nothing every match must hold, or a construct not read: always searched.
        ("spam|", None),
        ("(a|)b?", None),
        (r"\x41bcde", None),
        ("(?i)abcde", None),
        (r"(abc)\1", None),
    ],
)
def test_required_strings_are_those_every_match_holds(
    pattern: str, strings: set[str] | None
) -> None:
    assert required(pattern) == (None if strings is None else frozenset(strings))


def test_a_pattern_without_a_long_enough_string_has_no_grams() -> None:
    assert needed_grams(r"\bspf\b") is None
    assert needed_grams("mailer error") is not None


def _samples() -> list[str]:
    rules = reply_rules()
    texts = [rule.sample for rule in rules.reasons.values() if rule.sample]
    texts += [w.sample for rule in rules.reasons.values() for w in rule.wordings]
    return [t.lower() for t in texts]


def test_every_word_that_matches_a_sample_is_searched_in_it() -> None:
    rules = reply_rules()
    missed = []
    for text in _samples():
        worth = rules.worth_searching(Failure(0, "", text, "", "", ""))
        for rule in rules.reasons.values():
            for place, word in enumerate(rule.words):
                if word.search(text) and place not in worth.get(rule.name, ()):
                    missed.append((rule.name, word.pattern[:60], text[:60]))
    assert not missed


def test_a_reason_says_the_same_with_and_without_the_prefilter() -> None:
    rules = reply_rules()
    for text in _samples():
        worth = rules.worth_searching(Failure(0, "", text, "", "", ""))
        for rule in rules.reasons.values():
            assert rule.says(text, worth.get(rule.name, ())) == rule.says(text), (rule.name, text)


def test_grams_are_every_run_of_four_characters() -> None:
    assert grams_of("abcde") == {_gram("abcd"), _gram("bcde")}
    assert grams_of("abc") == set()
    # Other characters than ASCII: the ASCII runs are the grams a word's gram can be.
    assert _gram(" bcd") in grams_of("aé bcd")
    assert _gram("aé b") is None
    assert grams_of("é\ud800 abc") >= {_gram(" abc")}  # a lone surrogate is read too


def test_a_gate_reads_only_ascii_text_of_a_case_insensitive_pattern() -> None:
    pattern = re.compile("kelvin", re.IGNORECASE)
    needs = gate(pattern)
    assert ruled_out(needs, "no such words")
    assert not ruled_out(needs, "KELVIN")
    # Unicode's case rules match the Kelvin sign to "k"; lowercasing does not: not ruled out.
    text = "\u212aelvin"
    assert pattern.search(text) and not ruled_out(needs, text)


def _notice_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted(CORPUS.glob("*.eml")):
        lines += Parts(read_message(path.read_bytes())).notice.splitlines()
    return lines


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"bounce corpus not found at {CORPUS}")
def test_the_formats_gates_rule_out_no_line_their_patterns_match() -> None:
    formats = mail_formats()
    gated = [(formats._ignore, formats._ignore_gate)]
    gated += [(p, formats._section_gates[action]) for action, p in formats.sections]
    gated += [(p, g) for hint in formats.hints for _, p, g in hint.conditions]
    lines = _notice_lines()
    for pattern, needs in gated:
        assert not [ln for ln in lines if ruled_out(needs, ln) and pattern.search(ln)]
    for name, pattern in formats.commands:
        needs = formats._command_gates[name]
        assert needs is not None
        lowered = [ln.lower() for ln in lines]
        assert not [ln for ln in lowered if not needs.search(ln) and pattern.search(ln)]


def test_the_rules_files_are_read_by_the_prefilter() -> None:
    # Most words and formats have strings to gate them by: were the reader to stop reading
    # them (a change of the rules' syntax), the classifier would be slow, not wrong.
    rules = reply_rules()
    words = [w for rule in rules.reasons.values() for w in rule.words]
    assert sum(needed_grams(w.pattern) is not None for w in words) > 0.9 * len(words)
    formats = mail_formats()
    assert formats._ignore_gate is not None
    assert all(formats._command_gates.values())


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"bounce corpus not found at {CORPUS}")
def test_a_lowered_twin_finds_what_its_pattern_finds_in_ascii_lines() -> None:
    formats = mail_formats()
    lines = [ln for ln in _notice_lines() if ln.isascii()]
    for action, pattern in formats.sections:
        twin = formats._section_twins[action]
        assert twin is not None
        assert [bool(twin.search(ln.lower())) for ln in lines] == [
            bool(pattern.search(ln)) for ln in lines
        ]


def test_a_pattern_with_a_class_or_other_scripts_has_no_lowered_twin() -> None:
    # Lowered, [A-z] would lose "_" and the other characters between "Z" and "a".
    assert lowered_twin(re.compile("[A-z]+ failed", re.IGNORECASE)) is None
    assert lowered_twin(re.compile("empfänger", re.IGNORECASE)) is None
    twin = lowered_twin(re.compile(r"Delivery\s+FAILED", re.IGNORECASE | re.MULTILINE))
    assert twin is not None and twin.search("delivery  failed")
