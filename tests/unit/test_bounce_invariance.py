"""The bounce classifier's answer under rewrites that do not change a mail's meaning (issue
#16, round 73; ``bench/bounce_accuracy/invariance.py``): each transformation's own behaviour
(it preserves what its RFC says it does), a bounded run over a fixed sample of the shared
corpus (skipped where the corpus is not beside the clone, as ``test_bounce_corpus.py``), and
the parser's fix the measurement led to (format=flowed text read back into its lines, RFC
3676), which fails without it.
"""

from __future__ import annotations

import email
import re
from email.message import Message

import pytest

from bench.bounce_accuracy.invariance import (
    TRANSFORMS,
    action_upper,
    answer,
    ascii_as_utf8,
    base64_text,
    boundary_renamed,
    charset_to_utf8,
    explicit_default_type,
    fields_reordered,
    fold_long_fields,
    fold_narrow,
    format_flowed,
    from_name_encoded_word,
    media_type_case,
    mime_epilogue,
    mime_preamble,
    names_lower,
    names_upper,
    no_space_after_colon,
    params_quoted,
    part_names_upper,
    quoted_printable,
    returned_fold_narrow,
    returned_names_upper,
    subject_encoded_word,
    to_crlf,
    to_lf,
    trace_fields,
)
from postline.bounce.mail.flowed import unflow
from postline.bounce.mail.mime import part_text
from postline.bounce.verdicts import classify_mail
from tests.conftest import ROOT

CORPUS = ROOT.parent / "shared" / "corpus" / "bounces" / "sisimai"

RETURNED = b"""\
Received: from client.example.org (client.example.org [198.51.100.4])
	by mx.example.org (Postfix) with ESMTP id 4QxT2K1ZqPz9tY for <nadia.holm@alder.example>
From: News <news@example.org>
To: nadia.holm@alder.example
Subject: December's letter to our readers, with the calendar
Message-ID: <letter-42@example.org>

Hello.
"""

NOTICE = (
    b"""\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: news@example.org
Subject: Undelivered Mail Returned to Sender, a subject long enough to need folding at white space
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

<nadia.holm@alder.example>: host mx.alder.example[192.0.2.7] said: 550 5.1.1
    <nadia.holm@alder.example>: Recipient address rejected: User unknown in
    local recipient table (in reply to RCPT TO command)

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; nadia.holm@alder.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.alder.example
Diagnostic-Code: smtp; 550 5.1.1 <nadia.holm@alder.example>: Recipient address rejected

--b1
Content-Type: message/rfc822

"""
    + RETURNED
    + b"""
--b1--
"""
)


def _leaves(raw: bytes) -> list[Message]:
    return [p for p in email.message_from_bytes(raw).walk() if not p.is_multipart()]


def _notice_text(raw: bytes) -> list[Message]:
    """The notice's own text parts (the report's field blocks and the returned message's
    body, which the standard library also walks as text/plain, declare no type)."""
    return [p for p in _leaves(raw) if p.get_content_type() == "text/plain" and "content-type" in p]


def _returned(raw: bytes) -> bytes:
    start = raw.index(b"Content-Type: message/rfc822")
    return raw[start : raw.index(b"--b1--")]


def _unfolded(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n(?=[ \t])", b"", raw)


def test_the_notice_is_read_as_labelled() -> None:
    assert answer(NOTICE) == ("bounce", (("nadia.holm@alder.example", 2, "failed"),))


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_the_notice_answer_holds_under_each_transform(name: str) -> None:
    changed = TRANSFORMS[name](NOTICE)
    if changed is not None:
        assert answer(changed) == answer(NOTICE)


def test_line_endings_change_and_nothing_else() -> None:
    crlf = to_crlf(NOTICE)
    assert crlf is not None and re.search(rb"(?<!\r)\n", crlf) is None
    assert crlf.replace(b"\r\n", b"\n") == NOTICE
    assert to_lf(crlf) == NOTICE
    assert to_lf(NOTICE) is None  # nothing to change: skipped
    binary = NOTICE.replace(
        b"charset=us-ascii\n", b"charset=us-ascii\nContent-Transfer-Encoding: binary\n"
    )
    assert to_crlf(binary) is None


@pytest.mark.parametrize(
    ("transform", "encoding"), [(quoted_printable, "quoted-printable"), (base64_text, "base64")]
)
def test_reencoded_text_parts_decode_to_the_same_content(transform, encoding: str) -> None:
    long_line = (
        b"A line of the notice longer than seventy-six characters, "
        b"so that its encoding must break it.\n"
    )
    raw = NOTICE.replace(b"This is the mail system", long_line + b"This is the mail system")
    changed = transform(raw)
    assert changed is not None
    before, after = _leaves(raw), _leaves(changed)
    assert [p.get_content_type() for p in before] == [p.get_content_type() for p in after]
    text = list(zip(_notice_text(raw), _notice_text(changed), strict=True))
    assert text
    for b, a in text:
        assert a["content-transfer-encoding"] == encoding
        assert a.get_payload(decode=True) == b.get_payload(decode=True)
        assert a.get_content_charset() == b.get_content_charset() == "us-ascii"
    assert _returned(changed) == _returned(raw)  # the returned message is not re-encoded


def test_a_part_already_in_the_encoding_is_skipped() -> None:
    once = base64_text(NOTICE)
    assert once is not None and base64_text(once) is None


def test_field_names_change_case_in_the_header_and_the_report_only() -> None:
    upper = names_upper(NOTICE)
    assert upper is not None
    assert b"\nSUBJECT: Undelivered" in upper and b"\nFINAL-RECIPIENT: rfc822;" in upper
    assert b"\nDIAGNOSTIC-CODE: smtp; 550" in upper
    assert _returned(upper) == _returned(NOTICE)
    assert upper.lower() == names_lower(NOTICE).lower()  # type: ignore[union-attr]


@pytest.mark.parametrize("transform", [fold_long_fields, fold_narrow])
def test_folding_only_inserts_line_breaks_before_white_space(transform) -> None:
    folded = transform(NOTICE)
    assert folded is not None
    assert _unfolded(folded) == _unfolded(NOTICE)
    assert b"\n folding at white space\n" in folded or transform is fold_narrow
    assert b"Subject: Undelivered Mail Returned to Sender, a subject long enough to need\n" not in (
        _unfolded(folded)
    )
    assert b"\nDiagnostic-Code: smtp; 550 5.1.1\n" not in _unfolded(folded)
    assert _returned(folded) == _returned(NOTICE)


def test_fields_at_most_78_characters_where_white_space_allows() -> None:
    folded = fold_long_fields(NOTICE)
    assert folded is not None
    head = folded.split(b"\n\n")[0]
    assert max(len(line) for line in head.splitlines()) <= 78


def test_trace_fields_go_on_top() -> None:
    traced = trace_fields(NOTICE)
    assert traced is not None and traced.startswith(b"Received: from relay.example.net")
    assert traced.endswith(NOTICE)


def test_us_ascii_relabelled_utf8_only_when_ascii() -> None:
    relabelled = ascii_as_utf8(NOTICE)
    assert relabelled is not None
    assert b"Content-Type: text/plain; charset=utf-8\n" in relabelled
    not_ascii = NOTICE.replace(b"This is the mail", b"This is the m\xe4il")
    assert ascii_as_utf8(not_ascii) is None


def test_charset_transcoded_keeps_the_characters() -> None:
    latin = NOTICE.replace(b"charset=us-ascii", b"charset=iso-8859-1").replace(
        b"the mail system", b"the mail syst\xe8me"
    )
    changed = charset_to_utf8(latin)
    assert changed is not None
    before = [part_text(p) for p in _notice_text(latin)]
    after = [part_text(p) for p in _notice_text(changed)]
    assert before == after and "système" in after[0]
    assert charset_to_utf8(NOTICE) is None  # us-ascii: nothing to transcode


def test_mime_framing_rewrites_keep_every_part() -> None:
    for transform in (mime_preamble, mime_epilogue, boundary_renamed, media_type_case):
        changed = transform(NOTICE)
        assert changed is not None, transform.__name__
        assert [part_text(p) for p in _leaves(changed)][:1] == [
            part_text(p) for p in _leaves(NOTICE)
        ][:1]
        assert len(_leaves(changed)) == len(_leaves(NOTICE))


def test_header_rewrites_keep_decoded_values() -> None:
    for transform in (
        subject_encoded_word,
        from_name_encoded_word,
        fields_reordered,
        no_space_after_colon,
    ):
        changed = transform(NOTICE)
        assert changed is not None, transform.__name__
        before, after = email.message_from_bytes(NOTICE), email.message_from_bytes(changed)
        for name in ("subject", "from", "to", "content-type"):
            decoded = [
                "".join(
                    w.decode(c or "ascii") if isinstance(w, bytes) else w
                    for w, c in email.header.decode_header(m[name])
                )
                for m in (before, after)
            ]
            assert " ".join(decoded[0].split()) == " ".join(decoded[1].split()), (
                transform.__name__,
                name,
            )


def test_returned_header_rewrites_touch_only_its_header() -> None:
    upper = returned_names_upper(NOTICE)
    assert upper is not None and b"\nMESSAGE-ID: <letter-42@example.org>" in upper
    assert (
        upper.split(b"Content-Type: message/rfc822")[0]
        == NOTICE.split(b"Content-Type: message/rfc822")[0]
    )
    folded = returned_fold_narrow(NOTICE)
    assert folded is not None and _unfolded(folded) == _unfolded(NOTICE)


def test_part_header_names_change_case_in_the_notice_parts_only() -> None:
    upper = part_names_upper(NOTICE)
    assert upper is not None and upper.count(b"\nCONTENT-TYPE: ") == 3
    assert b"\nContent-Type: multipart/report" in upper  # the top level's: names_upper's
    assert (
        upper.split(b"CONTENT-TYPE: message/rfc822")[1]
        == NOTICE.split(b"Content-Type: message/rfc822")[1]
    )


def test_quoted_parameter_values_read_the_same() -> None:
    quoted = params_quoted(NOTICE)
    assert quoted is not None and b'report-type="delivery-status"' in quoted
    assert b'charset="us-ascii"' in quoted
    for before, after in zip(_leaves(NOTICE), _leaves(quoted), strict=True):
        assert before.get_params() == after.get_params()
    assert email.message_from_bytes(quoted).get_param("report-type") == "delivery-status"


def test_action_values_in_upper_case() -> None:
    upper = action_upper(NOTICE)
    assert upper is not None and b"\nAction: FAILED\n" in upper
    assert upper.replace(b"FAILED", b"failed") == NOTICE


def test_explicit_default_type_only_without_a_content_type() -> None:
    plain = b"From: MAILER-DAEMON@mx.example.org\nSubject: failure\n\nsome text\n"
    assert explicit_default_type(plain) == (
        b"From: MAILER-DAEMON@mx.example.org\nSubject: failure\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=us-ascii\n\nsome text\n"
    )
    assert explicit_default_type(NOTICE) is None


def test_format_flowed_reads_back_into_the_same_lines() -> None:
    long_line = (
        b"A line of the notice longer than seventy-eight characters, "
        b"so that it must flow onto the next.\n"
    )
    raw = NOTICE.replace(
        b"This is the mail system", long_line + b">quoted\nFrom here\nThis is the mail system"
    )
    flowed = format_flowed(raw)
    assert flowed is not None and b"format=flowed" in flowed
    before = [part_text(p) for p in _notice_text(raw)]
    after = [part_text(p) for p in _notice_text(flowed)]
    assert after == before
    assert format_flowed(NOTICE.replace(b"mail system at", b"mail system  \nat")) is None


# --- the parser's fix: RFC 3676 ------------------------------------------------------------


def test_unflow_joins_soft_breaks_and_takes_stuffing_off() -> None:
    assert unflow("one \ntwo \nthree\nfour") == "one two three\nfour"
    assert unflow(" >>> MAIL From:<a@b>\n From here") == ">>> MAIL From:<a@b>\nFrom here"
    assert unflow("one \ntwo", delsp=True) == "onetwo"
    assert unflow("-- \nsignature") == "-- \nsignature"  # section 4.3: a hard break
    assert unflow(">quoted \n>more\nplain") == ">quoted more\nplain"
    assert unflow(">quoted \nplain") == ">quoted \nplain"  # section 4.5: depths do not join
    assert unflow("one \r\ntwo\r\n") == "one two\r\n"


FLOWED_NOTICE = b"""\
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: <news@example.org>
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii; format=flowed

This is the mail system at host mx.example.org.

<nadia.holm@alder.example>: host mx.alder.example[192.0.2.7] said:
     550 Unknown user nadia.holm@alder.example (in reply to end{space}
of DATA
     command)

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; nadia.holm@alder.example
Action: failed
Status: 5.0.0
Remote-MTA: dns; mx.alder.example
Diagnostic-Code: smtp; 550 Unknown user nadia.holm@alder.example

--b1--
""".replace(b"{space}", b" ")  # a soft line break ends in a space (RFC 3676 section 4.2)


def test_a_flowed_notice_reads_as_its_unflowed_lines() -> None:
    """Postfix's continuation lines are indented; a mailer that sends the notice flowed
    breaks "(in reply to end of DATA command)" at a space, and the line "of DATA" that
    follows is not indented: read as written, the recipient's paragraph ended there and the
    refusal after DATA (a content filter's, 4) read as an unknown user (2)."""
    _, verdicts = classify_mail(FLOWED_NOTICE)
    assert [(v.recipient, v.status) for v in verdicts] == [("nadia.holm@alder.example", 4)]
    fixed = FLOWED_NOTICE.replace(b"; format=flowed", b"").replace(
        b"end \nof DATA\n", b"end of DATA\n"
    )
    assert answer(fixed) == answer(FLOWED_NOTICE)


# --- a bounded run over the shared corpus ---------------------------------------------------

# Every 25th mail of the shared corpus, and the eight whose answer format=flowed changed
# before the parser read RFC 3676.
FLOWED_CHANGED = (
    "lhost-exim-44.eml",
    "lhost-exim-53.eml",
    "lhost-postfix-49.eml",
    "lhost-v5sendmail-07.eml",
    "lhost-x6-01.eml",
    "rhost-nttdocomo-02.eml",
    "rhost-nttdocomo-03.eml",
)


def _sample() -> list[str]:
    names = sorted(p.name for p in (CORPUS / "eml").glob("*.eml"))
    return sorted(set(names[::25]) | set(FLOWED_CHANGED))


@pytest.mark.skipif(
    not (CORPUS / "labels.jsonl").exists(), reason=f"bounce corpus not found at {CORPUS}"
)
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_corpus_sample_answers_hold(name: str) -> None:
    transform = TRANSFORMS[name]
    changed = []
    for file in _sample():
        raw = (CORPUS / "eml" / file).read_bytes()
        after = transform(raw)
        if after is not None and answer(after) != answer(raw):
            changed.append(file)
    assert changed == []
