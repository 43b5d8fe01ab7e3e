"""Replies to input at the edge of the protocol (found by the fuzzer, ``test_smtp_fuzz``):
each is one proper reply, in SMTP's terms, and the session goes on."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.integration.smtp_support import (
    SECRET,
    USER,
    LoopThread,
    RawClient,
    Relay,
    policy,
    running_relay,
)


@pytest.fixture
def relay(amqp_url: str) -> Iterator[Relay]:
    loop = LoopThread()
    relay = Relay(amqp_url, policy({"plain_auth_on_loopback": True}))
    try:
        with running_relay(loop, relay):
            yield relay
    finally:
        loop.close()


@pytest.fixture
def smtp(relay: Relay) -> Iterator[RawClient]:
    client = RawClient(relay.port)
    assert client.reply().startswith("220 ")
    assert client.command("EHLO client.test").startswith("250-")
    yield client
    client.close()


def test_vrfy_is_never_verified_but_answered_with_a_status(smtp: RawClient) -> None:
    assert smtp.command("VRFY <someone@a.test>") == (
        "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"
    )
    assert smtp.command("VRFY") == "501 5.5.4 Syntax: VRFY <address>"
    assert smtp.command("VRFY <nobody>") == "553 5.1.3 address has no '@'"


def test_vrfy_with_bytes_that_are_not_utf8_is_a_syntax_error(smtp: RawClient) -> None:
    smtp.send(b"VRFY <\xff\xfeuser@a.test>")
    assert smtp.reply() == "501 5.5.2 Error: the argument is not UTF-8"
    assert smtp.command("NOOP").startswith("250 ")


def test_a_reply_never_echoes_control_characters(smtp: RawClient) -> None:
    smtp.send(b"XY\x0b\x0cZ\x1b[0m now")
    assert smtp.reply() == '500 5.5.2 Error: command "XY??Z?[0M" not recognized'


def test_an_aborted_auth_gets_one_reply(smtp: RawClient) -> None:
    assert smtp.command("AUTH LOGIN").startswith("334 ")
    assert smtp.command("*") == "501 5.7.0 Auth aborted"
    # Exactly one reply: the next command's reply is the next thing the client reads.
    assert smtp.command("NOOP") == "250 2.0.0 OK"
    assert smtp.command("AUTH PLAIN").startswith("334 ")
    assert smtp.command("not base64!") == "501 5.5.2 Can't decode base64"
    assert smtp.command("NOOP") == "250 2.0.0 OK"


def test_an_auth_response_line_too_long_is_refused_and_the_session_goes_on(
    smtp: RawClient,
) -> None:
    assert smtp.command("AUTH LOGIN").startswith("334 ")
    assert smtp.command("A" * 70_000) == "500 5.5.2 Error: line too long (RFC 5321 4.5.3.1.6)"
    assert smtp.command("NOOP") == "250 2.0.0 OK"
    plain = base64.b64encode(f"\0{USER}\0{SECRET}".encode()).decode()
    assert smtp.command(f"AUTH PLAIN {plain}") == "235 2.7.0 Authentication successful"
