"""Work the classifier leaves out because it cannot change an answer (issue #16, round 80;
bench/README.md): the name mask searches a text only for the kinds of name it may hold, the
sender's missing address is looked for only in a text holding one of its words, a reason
none of whose words the prefilter finds in an ASCII text is not searched, and the returned
original's dashed heading is matched without trying every split of a line's blanks. Each is
compared with the full work it replaces."""

from __future__ import annotations

import re

import pytest

from postline.bounce.classify import reply_rules
from postline.bounce.mail.textformat import mail_formats

TEXTS = [
    "host spam-quota.mx.example.org[192.0.2.7] said: 550 5.1.1 <quota@example.org>: user unknown",
    "host mx.example.org said: 550 5.1.1 user unknown",
    "smtp; 550 5.1.1 <jo@example.org>... user unknown",
    "mail.example.de (192.0.2.1) refused: no such user",
    "antivirus.isp [ipv4:10.0.0.7] said: message rejected",
    "550 5.7.1 rejected: listed at bl.spamcop.net",
    "550 5.1.1 sender <s@example.org> does not exist",
    "553 5.1.1 sender not found",
    "550 5.1.1 no such sender",
    "550 sender ok, recipient unknown",
    "550 5.1.1 user unknown",
    "552 mailbox full: quota@example.org",
    "host a.b!c@d.org said: 550 rejected",
    "550 5.1.1 empfänger unbekannt: jo@example.de",
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_mask_masks_as_all_kinds_searched_at_once(text: str) -> None:
    mask = reply_rules().names
    assert mask is not None
    every = re.compile("|".join(pattern for pattern, _ in mask.kinds))
    assert mask.mask(text) == every.sub(mask._masked, text)


@pytest.mark.parametrize("text", TEXTS)
def test_the_senders_missing_address_is_found_as_without_its_words_looked_for_first(
    text: str,
) -> None:
    guard = reply_rules().sender_subject
    assert guard is not None and guard.missing_needs
    without = type(guard)(**{**guard.__dict__, "missing_needs": frozenset()})
    assert guard.missing_sender(text) == without.missing_sender(text)


def test_a_text_without_the_missing_words_is_no_missing_sender() -> None:
    guard = reply_rules().sender_subject
    assert guard is not None
    assert guard.missing_sender("550 5.1.1 sender <s@example.org> does not exist")
    assert not guard.missing_sender("550 5.1.1 sender <s@example.org> refused")


@pytest.mark.parametrize("text", TEXTS)
def test_a_reason_says_the_same_when_none_of_its_words_are_worth_searching(text: str) -> None:
    rules = reply_rules()
    for rule in rules.text:
        if not rule.says(text):
            assert not rule.says(text, [])


# The original_starts pattern before round 80 wrote its dashes as "[ \t]*-*[ \t]*".
_DASHES_BEFORE = (
    r"^[ \t]*-*[ \t]*(unsent|original|returned|undelivered) message( follows| headers)?"
    r"[ \t]*[.:]?[ \t]*-*[ \t]*$"
)
LINES = [
    "----- Original message -----",
    "   ----- Returned message follows: -----",
    "Unsent message follows",
    "\t -- undelivered message headers --",
    "    original message",
    "  - -original message",
    "a returned message",
    "        \t    ",
    "------ original message.  ",
]


@pytest.mark.parametrize("line", LINES)
def test_an_original_start_is_found_where_the_dashes_pattern_found_it(line: str) -> None:
    before = re.compile(_DASHES_BEFORE, re.IGNORECASE | re.MULTILINE)
    (now,) = (p for p in mail_formats().original_starts if "unsent|original" in p.pattern)
    text = f"notice\n{line}\nTo: x@example.org\n"
    found, was = now.search(text), before.search(text)
    assert (found and found.span()) == (was and was.span())
