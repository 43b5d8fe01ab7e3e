"""Property-based fuzzing of the bounce parser: whatever arrives, no exception escapes.

A bounce mail is whatever anyone sends to a return-path address, so ``classify_mail`` must
answer for arbitrary bytes, arbitrary MIME (any tree of parts, any content type, charset and
transfer encoding, broken or not), deep nesting and huge headers — with a report and
verdicts of the documented shape. The default run is quick; the long run whose figures
bench/README.md records is

    BOUNCE_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/unit/test_bounce_fuzz.py \\
        --timeout=0 --hypothesis-show-statistics
"""

from __future__ import annotations

import base64
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postline.bounce.mail import Kind
from postline.bounce.verdicts import classify_mail

QUICK = settings(
    max_examples=int(os.environ.get("BOUNCE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

STATUSES = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99}
CONTENT_TYPES = [
    "text/plain",
    "text/html",
    "text/rfc822-headers",
    "message/rfc822",
    "message/delivery-status",
    "message/global-delivery-status",
    "message/feedback-report",
    "message/disposition-notification",
    "message/partial",
    "multipart/report",
    "multipart/mixed",
    "multipart/alternative",
    "application/octet-stream",
    "application/json",
    "",
    "garbage",
    "text/",
]
CHARSETS = ["utf-8", "iso-8859-1", "iso-2022-jp", "utf-16", "utf-7", "x-unknown", "", "b\x00d"]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "bogus"]
FIELD_NAMES = [
    "Final-Recipient",
    "Original-Recipient",
    "X-Actual-Recipient",
    "Action",
    "Status",
    "Diagnostic-Code",
    "Remote-MTA",
    "Reporting-MTA",
    "Feedback-Type",
    "Original-Rcpt-To",
    "Subject",
    "From",
    "To",
    "X-Failed-Recipients",
    "Auto-Submitted",
    "Content-Type",
]
WORDS = [
    "550",
    "5.1.1",
    "4.2.2",
    "user unknown",
    "rfc822;",
    "<a@b.test>",
    "@",
    "failed",
    "delayed",
    "=?utf-8?B?",
    "=?x?Q?=ZZ?=",
    "expanded from <",
    "generated from",
    "--b",
    "\r\n ",
    "&#xD800;",
    "<p>",
    "</",
    "<!",
    "{",
    '"notificationType": "Bounce"',
]

text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(WORDS) | st.text(max_size=12), max_size=40).map(" ".join),
)
header_value = st.one_of(
    text,
    st.text(alphabet=st.characters(codec="latin-1"), min_size=0, max_size=5_000),
    st.builds(lambda w, n: w * n, st.sampled_from(WORDS), st.integers(0, 3_000)),
)


def _encode(body: bytes, encoding: str, broken: bool) -> bytes:
    if encoding == "base64":
        encoded = base64.b64encode(body)
        return encoded[:-3] + b"!*" if broken and encoded else encoded
    if encoding == "quoted-printable" and broken:
        return body + b"=Z\r\n=\r\n=4"
    return body


@st.composite
def parts(draw: st.DrawFn, depth: int = 0) -> bytes:
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(ENCODINGS))
    headers = [
        f"Content-Type: {ctype}; charset={charset}",
        f"Content-Transfer-Encoding: {encoding}",
    ]
    for _ in range(draw(st.integers(0, 4))):
        headers.append(f"{draw(st.sampled_from(FIELD_NAMES))}: {draw(header_value)}")
    if ctype.startswith("multipart/") and depth < 6:
        boundary = draw(st.sampled_from(["b", "=_x", "", "b b", "--"]))
        headers[0] += f'; boundary="{boundary}"'
        children = draw(st.lists(parts(depth + 1), max_size=4))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + c + b"\r\n" for c in children)
        if draw(st.booleans()):
            body += b"--" + boundary.encode() + b"--\r\n"
    elif ctype.startswith("message/") and depth < 6 and draw(st.booleans()):
        body = draw(parts(depth + 1))
    else:
        fields = draw(st.lists(st.tuples(st.sampled_from(FIELD_NAMES), text), max_size=8))
        raw = "\r\n".join(f"{k}: {v}" for k, v in fields) + "\r\n\r\n" + draw(text)
        body = raw.encode(draw(st.sampled_from(["utf-8", "latin-1", "utf-16"])), "replace")
        body = _encode(body, encoding, draw(st.booleans()))
    return ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    top = [
        f"From: {draw(header_value)}",
        f"Subject: {draw(st.sampled_from(['Undelivered Mail', 'Delivery Status', '']))}",
        "MIME-Version: 1.0",
    ]
    for _ in range(draw(st.integers(0, 3))):
        top.append(f"{draw(st.sampled_from(FIELD_NAMES))}: {draw(header_value)}")
    return ("\r\n".join(top) + "\r\n").encode("utf-8", "surrogateescape") + draw(parts())


def _holds(raw: bytes) -> None:
    report, verdicts = classify_mail(raw)
    assert isinstance(report.kind, Kind)
    if report.kind is not Kind.BOUNCE:
        assert verdicts == []
    for verdict in verdicts:
        row = verdict.as_json()
        assert verdict.status in STATUSES
        assert row["delivery"] in ("failed", "deferred")
        assert isinstance(row["recipient"], str) and isinstance(row["reason"], str)


@QUICK
@given(st.binary(max_size=4_000))
def test_arbitrary_bytes(raw: bytes) -> None:
    _holds(raw)


@QUICK
@given(mails())
def test_arbitrary_mime_with_broken_charsets_and_encodings(raw: bytes) -> None:
    _holds(raw)


@QUICK
@given(st.integers(1, 120), st.sampled_from(["message/rfc822", "multipart/mixed"]))
def test_deep_nesting(depth: int, ctype: str) -> None:
    inner = b"From: MAILER-DAEMON@x.test\r\nSubject: Undelivered\r\n\r\n<a@b.test>: 550 5.1.1 ?\r\n"
    for _ in range(depth):
        if ctype == "message/rfc822":
            inner = b"Subject: Undelivered Mail\r\nContent-Type: message/rfc822\r\n\r\n" + inner
        else:
            inner = (
                b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                + inner
                + b"\r\n--b--\r\n"
            )
    _holds(inner)


@QUICK
@given(st.integers(1, 2_000_000), st.integers(0, 20_000), st.sampled_from(WORDS))
def test_huge_headers(length: int, count: int, word: str) -> None:
    value = (word * (length // max(1, len(word)) + 1))[:length]
    headers = "".join(f"X-Filler-{i}: {word}\r\n" for i in range(count))
    raw = (
        f"From: MAILER-DAEMON@x.test\r\nSubject: Undelivered {value}\r\n{headers}"
        f"X-Failed-Recipients: {value}\r\n\r\n<a@b.test>: 550 5.1.1 User unknown\r\n"
    ).encode("utf-8", "surrogateescape")
    _holds(raw)


@QUICK
@given(
    st.integers(1, 300_000),
    st.sampled_from(["a", "\r\n ", " \n", "x@", "550 ", "sent "]),
    st.sampled_from(["Final-Recipient: rfc822; ", "Diagnostic-Code: smtp; ", "X-Note: "]),
)
def test_huge_report_fields_and_notices(length: int, word: str, field: str) -> None:
    # Found by the long run: a notice of many blank lines, a report field of one long token,
    # a long run of text without an "@" (each once took seconds to minutes: patterns whose
    # cost grew with the square of the text).
    value = (word * (length // len(word) + 1))[:length]
    raw = (
        "From: MAILER-DAEMON@x.test\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n{value}\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        f"{field}{value}\r\nFinal-Recipient: rfc822; a@b.test\r\nAction: failed\r\n--b--\r\n"
    ).encode()
    _holds(raw)
