"""Work the classifier leaves out because it cannot change an answer (issue #16, rounds 80
and 83; bench/README.md): the name mask searches a text only for the kinds of name it may
hold, the sender's missing address is looked for only in a text holding one of its words, a
reason none of whose words the prefilter finds in an ASCII text is not searched, and the
returned original's dashed heading is matched without trying every split of a line's
blanks; since round 83 the sender and recipient words test a word boundary once for a run of
alternatives that each begin at one, a name under a top-level domain is looked for only in a
text with such a name's end, and the prefilter reads grams as integers. Each is compared
with the full work it replaces."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import yaml

from postline.bounce.classify import Failure, lower_pattern, reply_rules
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
    "550 5.1.0 mail from <s@example.org>: sender rejected; to <r@example.org>: user unknown",
    "553 5.1.1 absender unbekannt, destinataire inconnu; helo rejected",
    "550 your e-mail address was not found (originator: s@x.example.org)",
    "550 unbekannter empfänger. 送信者 発件人 return-path <a@b.example.org>",
    "450 4.7.1 client host rejected: cannot find your hostname, [192.0.2.9]. end.",
    "mx.example.com.: host not found. (see example.info-)",
    "550 rcpt to:<x@y.example.org> rejected ... mail.local.",
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


@pytest.mark.parametrize("text", TEXTS)
def test_the_subjects_are_found_as_with_a_boundary_tested_for_each_alternative(
    text: str,
) -> None:
    raw = yaml.safe_load(
        resources.files("postline.bounce.rules").joinpath("smtp_replies.yaml").read_text("utf-8")
    )["sender_subject"]
    sender, recipient = lower_pattern(raw["sender"]), lower_pattern(raw["recipient"])
    every = re.compile(f"(?P<sender>{sender})|(?P<recipient>{recipient})")
    guard = reply_rules().sender_subject
    assert guard is not None and guard.subjects.pattern != every.pattern
    # the whole text (missing_sender) and windows (names_sender reads one about a word)
    for start, end in [(0, len(text)), *((s, s + 24) for s in range(len(text)))]:
        found = [(m.span(), m.lastgroup) for m in guard.subjects.finditer(text, start, end)]
        assert found == [(m.span(), m.lastgroup) for m in every.finditer(text, start, end)]


def test_a_text_with_dots_only_in_codes_and_sentences_is_searched_for_no_host() -> None:
    mask = reply_rules().names
    assert mask is not None
    text = "550 5.1.1 user unknown. please check the address... see rfc 5321 (section 4.2)."
    assert not any(needs.search(text) for _, needs in mask.kinds)
    assert mask.mask(text) == text
    named = "550 5.1.1 host mx.example.com[192.0.2.1] said: no such user quota.example.de."
    assert all(needs.search(named) for _, needs in mask.kinds[1:])


@pytest.mark.parametrize("text", TEXTS)
def test_a_reason_says_the_same_with_the_grams_as_integers_as_with_every_word_searched(
    text: str,
) -> None:
    rules = reply_rules()
    worth = rules.worth_searching(Failure(0, "", text, "", "", ""))
    for rule in rules.text:
        assert rule.says(text, worth.get(rule.name, [])) == rule.says(text), rule.name
