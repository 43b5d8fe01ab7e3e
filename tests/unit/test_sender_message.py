"""The message as the sender puts it on the wire: line ends, Received removal, dot-stuffing,
the From domain DKIM signs for."""

from __future__ import annotations

import re

import pytest

from postline.sender.message import crlf, from_domain, strip_received
from postline.sender.smtp import wire_data

MESSAGE = (
    b"Received: from a by b;\r\n\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: App <app@Example.TEST>\r\n"
    b"X-Note: received: not a Received field\r\n"
    b"received : (odd spacing, still one)\r\n"
    b"Subject: hi\r\n"
    b"  continued subject\r\n"
    b"RECEIVED: from c by d\r\n"
    b"\r\n"
    b"Received: in the body stays\r\n"
)


def test_strip_received_removes_every_received_field_with_its_continuations() -> None:
    assert strip_received(MESSAGE) == (
        b"From: App <app@Example.TEST>\r\n"
        b"X-Note: received: not a Received field\r\n"
        b"Subject: hi\r\n"
        b"  continued subject\r\n"
        b"\r\n"
        b"Received: in the body stays\r\n"
    )


def test_strip_received_leaves_a_message_without_them_identical() -> None:
    message = b"From: a@b.test\r\nSubject: x\r\n\r\nbody\r\n"
    assert strip_received(message) is message


def test_strip_received_on_a_header_only_message() -> None:
    assert strip_received(b"Received: x\r\nFrom: a@b.test\r\n") == b"From: a@b.test\r\n"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r\n", b"a\r\nb\r\n"),
        (b"a\r\nb", b"a\r\nb"),
        (b"a\r\n\nb", b"a\r\n\r\nb"),
    ],
)
def test_crlf_normalises_line_ends(raw: bytes, expected: bytes) -> None:
    assert crlf(raw) == expected


def test_wire_data_dot_stuffs_and_terminates() -> None:
    assert wire_data(b"a\r\n.hidden\r\n..two\r\nlast") == (
        b"a\r\n..hidden\r\n...two\r\nlast\r\n.\r\n"
    )
    assert wire_data(b".\r\n") == b"..\r\n.\r\n"


@pytest.mark.parametrize(
    "content",
    [b"", b"plain\r\n", b".a", b"a.\r\nb", b"a\r\n.", b"a\r\n\r\n..\r\n", b"x" * 5000 + b"\r\n.y"],
)
def test_wire_data_without_dots_is_the_content_as_it_is(content: bytes) -> None:
    # The shortcut for content with no line starting with a dot gives what the expression does.
    stuffed = re.sub(rb"(?m)^\.", b"..", content)
    assert (
        wire_data(content) == stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n"
    )


@pytest.mark.parametrize(
    ("header", "domain"),
    [
        (b"From: App <app@Example.TEST>\r\n", "example.test"),
        (b"From: plain@x.test\r\n", "x.test"),
        (b'From: "Doe, John" <john@y.test>, other@z.test\r\n', "y.test"),
        (b"From:\r\n  folded@w.test\r\n", "w.test"),
        (b"Subject: no from\r\n", None),
        (b"From: undisclosed\r\n", None),
    ],
)
def test_from_domain(header: bytes, domain: str | None) -> None:
    assert from_domain(header + b"Subject: s\r\n\r\nFrom: body@not.this\r\n") == domain
