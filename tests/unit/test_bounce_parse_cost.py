"""Work the bounce parser leaves out because it cannot change an answer (issue #16, round 82;
bench/README.md): the MIME tree is built from all of a mail's lines at once
(``mail/tree.py``) instead of by the standard library's feed parser, and a hint whose one
search is of the notice is not searched where it would change no recipient. Each is compared
with the full work it replaces: the tree with ``email.message_from_bytes``'s, field by field,
on every mail of the shared corpus, on each under every round-73 rewrite, on malformed mails
made here; the hints with every hint searched."""

from __future__ import annotations

import email
import itertools
import random
import re
from email.feedparser import NLCRE_eol
from email.message import Message

import pytest

from bench.bounce_accuracy.invariance import TRANSFORMS
from postline.bounce.mail import parse, tree
from postline.bounce.mail.mime import Parts, message_headers, read_message
from postline.bounce.mail.tree import MAX_DEPTH, boundary_line, line_end, message_from_bytes
from tests.conftest import ROOT

CORPUS = ROOT.parent / "shared" / "corpus" / "bounces" / "sisimai" / "eml"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"bounce corpus not at {CORPUS}")


def shape(message: Message) -> tuple[object, ...]:
    """Everything of a parsed message that anything reads: its envelope line, every header
    as stored, default type, preamble, epilogue, defects, charset, and its payload (the
    parts' shapes for a multipart)."""
    payload = message._payload
    return (
        type(message),
        message._unixfrom,
        list(message._headers),
        message._default_type,
        message.preamble,
        message.epilogue,
        [(type(d), str(d)) for d in message.defects],
        message._charset,
        [shape(p) for p in payload] if isinstance(payload, list) else payload,
    )


def built(raw: bytes) -> Message:
    """The tree ``tree.py`` builds itself (``message_from_bytes`` without its way back to the
    standard library, which would make every comparison hold)."""
    return tree._Tree(raw.decode("ascii", "surrogateescape")).parse()


def assert_same_tree(raw: bytes) -> None:
    assert shape(built(raw)) == shape(email.message_from_bytes(raw))


MALFORMED = [
    b"",
    b"\n",
    b"no header at all\nbody\n",
    b"From sender Mon Dec  7 00:00:00 2026\nSubject: x\n\nbody\n",
    b"Subject: x\nFrom late\n\nbody",
    b"Subject: x\nFrom here\nTo: y\n\nbody",
    b" continued first\nSubject: x\n\nbody\n",
    b": no name\nSubject: x\n\nbody\n",
    b"Subject: x\nthis line is no field\nTo: y\n\nbody\n",
    b"Content-Type: multipart/mixed\n\nno boundary\n",
    b'Content-Type: multipart/mixed; boundary="b"\n\nno part at all\n',
    b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n\nonly a part\n',
    b'Content-Type: multipart/mixed; boundary="b"\nContent-Transfer-Encoding: base64\n\n'
    b"pre\n--b\n--b \t\n\none\n--b\r\n\ntwo\r\n--b--  \nepi\nlogue",
    b'Content-Type: multipart/report; boundary="o"\n\n--o\n'
    b'Content-Type: multipart/alternative; boundary="i"\n\n--i\n\ninner\n--o\n\nouter\n--o--\n',
    b'Content-Type: multipart/digest; boundary="d"\n\n--d\n\nSubject: in a digest\n\nx\n--d--\n',
    b'Content-Type: multipart/report; boundary="r"\r\n\r\n--r\r\n'
    b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\n"
    b"Final-Recipient: rfc822; x@y\r\nAction: failed\r\nnot a field\r\n\r\n\r\n--r--\r\n",
    b"Content-Type: message/rfc822\n\nSubject: inner\nContent-Type: message/rfc822\n\n"
    b"Subject: innermost\n\nbody\r",
    b'Content-Type: multipart/mixed; boundary="x"\r\rpre\r--x\rA: b\r\rbody\r--x--\r',
    b'Content-Type: multipart/mixed; boundary="x"\n\n--x\n--x\n--x--',
    b'Content-Type: multipart/mixed; boundary=""\n\n--\n\nempty boundary\n----\n',
    b'Content-Type: multipart/mixed; boundary="a+b.c"\n\n--a+b.c\n\nx\n--a+b.c--\n',
    b"Subject: \xe9t\xe9 \xff\n\n\x80 body\n",
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_a_malformed_mail_parses_to_the_standard_librarys_tree(raw: bytes) -> None:
    assert_same_tree(raw)


def test_every_splice_of_the_malformed_mails_parses_to_the_standard_librarys_tree() -> None:
    lines = [line for raw in MALFORMED for line in raw.splitlines(keepends=True)]
    pick = random.Random(82)
    for _ in range(3000):
        assert_same_tree(b"".join(pick.choice(lines) for _ in range(pick.randrange(1, 14))))


def test_a_mail_nested_deeper_than_the_limit_is_the_standard_librarys() -> None:
    raw = b"Content-Type: message/rfc822\n\n" * (MAX_DEPTH + 5) + b"Subject: deep\n\nbody\n"
    with pytest.raises(tree._TooDeep):
        built(raw)
    assert shape(message_from_bytes(raw)) == shape(email.message_from_bytes(raw))


@pytest.mark.parametrize("cut", range(0, 400, 7))
def test_a_mail_cut_anywhere_parses_to_the_standard_librarys_tree(cut: int) -> None:
    assert_same_tree(MALFORMED[15][:cut] + MALFORMED[12][cut:])


@needs_corpus
def test_every_corpus_mail_parses_to_the_standard_librarys_tree() -> None:
    differ = []
    for path in sorted(CORPUS.glob("*.eml")):
        raw = path.read_bytes()
        if shape(built(raw)) != shape(email.message_from_bytes(raw)):
            differ.append(path.name)
    assert differ == []


@needs_corpus
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_corpus_mails_rewritten_parse_to_the_standard_librarys_tree(name: str) -> None:
    differ = []
    for path in sorted(CORPUS.glob("*.eml"))[::5]:
        changed = TRANSFORMS[name](path.read_bytes())
        if changed is not None and shape(built(changed)) != shape(
            email.message_from_bytes(changed)
        ):
            differ.append(path.name)
    assert differ == []


def _strings(alphabet: list[str], longest: int) -> list[str]:
    return [
        "".join(chars)
        for size in range(longest + 1)
        for chars in itertools.product(alphabet, repeat=size)
    ]


def test_a_line_end_is_what_the_standard_librarys_search_finds() -> None:
    for text in _strings(["a", "\r", "\n", " ", "\x0b"], 5):
        found = NLCRE_eol.search(text)
        assert line_end(text) == (found.group(0) if found else ""), repr(text)


@pytest.mark.parametrize("boundary", ["", "b", "-", "a.b+c", "=_x--"])
def test_a_boundary_line_is_what_the_standard_librarys_pattern_says(boundary: str) -> None:
    separator = "--" + boundary
    pattern = re.compile(
        "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    )
    for rest in _strings(["-", " ", "\t", "\r", "\n", "x"], 5):
        for line in (separator + rest, rest):
            found = pattern.match(line)
            want = None if found is None else (bool(found.group("end")), found.group("linesep"))
            assert boundary_line(separator, line) == want, repr(line)


def _every_hint_searched(report: parse.BounceReport, headers: dict[str, str], notice: str) -> None:
    """``parse._apply_hints`` before round 82: every hint's conditions searched."""
    reporter = ""
    for hint in parse.mail_formats().hints:
        if hint.applies(headers, notice):
            if hint.own_domain and not reporter:
                reporter = parse._host_of(headers.get("from", ""))
            for r in report.recipients:
                if hint.about(r, reporter):
                    r.hint = r.hint or hint.reason
                    r.command = r.command or hint.command


def _hinted(raw: bytes) -> list[tuple[str, str, str]]:
    return [(r.recipient, r.hint, r.command) for r in parse.parse_bounce(raw).recipients]


@needs_corpus
def test_hints_left_unsearched_change_no_recipient(monkeypatch: pytest.MonkeyPatch) -> None:
    mails = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    some = [_hinted(raw) for raw in mails]
    monkeypatch.setattr(parse, "_apply_hints", _every_hint_searched)
    every = [_hinted(raw) for raw in mails]
    assert some == every
    assert any(hint for found in every for _, hint, _ in found)


def test_a_hint_about_a_diagnostic_no_recipient_has_is_not_searched() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail\n\n"
        b"You are not allowed to send to this list.\n\n<jo@example.org>: host said: 550 no\n"
    )
    headers = message_headers(read_message(raw))
    notice = Parts(read_message(raw)).notice
    rejected = [h for h in parse.mail_formats().hints if h.reads_notice_only and h.diagnostic]
    assert rejected and any(h.applies(headers, notice) for h in rejected)
    report = parse.parse_bounce(raw)
    assert [r.hint for r in report.recipients] == [""]
