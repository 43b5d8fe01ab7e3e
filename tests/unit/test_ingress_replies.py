"""Every relay reply carries an enhanced status (RFC 2034), except those RFC 2034 exempts."""

from __future__ import annotations

import re

import pytest

from postline.ingress import replies
from postline.ingress.replies import with_enhanced_status

ENHANCED = re.compile(r"^([245])\d\d [245]\.\d{1,3}\.\d{1,3} \S")


def test_every_named_reply_has_a_matching_enhanced_status() -> None:
    named = {
        k: v
        for k, v in vars(replies).items()
        if k.isupper()
        and not k.startswith(("_", "SYNTAX_HELO", "SYNTAX_EHLO"))
        and isinstance(v, str)
        and v[0] != "3"
    }
    assert len(named) > 20
    for name, text in named.items():
        match = ENHANCED.match(text)
        assert match, name
        # The enhanced class is the reply's class (RFC 3463 §3.1).
        assert text[4] == match.group(1), name


@pytest.mark.parametrize(
    ("aiosmtpd", "ours"),
    [
        ("250 OK", "250 2.0.0 OK"),
        ("221 Bye", "221 2.0.0 Bye"),
        ("500 Error: bad syntax", "500 5.5.2 Error: bad syntax"),
        ('500 Error: command "X" not recognized', '500 5.5.2 Error: command "X" not recognized'),
        ("503 Error: need RCPT command", "503 5.5.1 Error: need RCPT command"),
        ("552 Error: Too much mail data", "552 5.3.4 Error: Too much mail data"),
        ("220 Ready to start TLS", "220 2.0.0 Ready to start TLS"),
        (
            "535 5.7.8 Authentication credentials invalid",
            "535 5.7.8 Authentication credentials invalid",
        ),
    ],
)
def test_aiosmtpd_replies_get_one(aiosmtpd: str, ours: str) -> None:
    assert with_enhanced_status(aiosmtpd) == ours


@pytest.mark.parametrize(
    "plain",
    ["220 relay.test Postline ESMTP", "250-SIZE 1000", "334 VXNlcm5hbWU6", "354 End data"],
)
def test_greeting_continuations_and_3xx_stay_plain(plain: str) -> None:
    assert with_enhanced_status(plain) == plain


def test_multi_line_replies_stay_plain() -> None:
    ehlo = "250-relay.test\r\n250 HELP"
    assert with_enhanced_status(ehlo) == ehlo
