"""The SMTP relay over real sockets against a real RabbitMQ vhost: one test per reply.

Each test starts the relay in-process with the policy it needs (see ``smtp_support``) and talks
to it like a client would: smtplib for ordinary sessions, raw lines where smtplib would hide
the reply.
"""

from __future__ import annotations

import base64
import contextlib
import smtplib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from postline.ingress import relay as smtp_module
from tests.integration.smtp_support import (
    OTHER_SECRET,
    OTHER_USER,
    SECRET,
    USER,
    LoopThread,
    RawClient,
    Relay,
    policy,
    queued_deliveries,
    queued_events,
    running_relay,
    take_deliveries,
)
from tests.polling import poll_until

StartRelay = Callable[..., Relay]

MESSAGE = (
    b"From: app@example.test\r\n"
    b"To: someone@a.test\r\n"
    b"Subject: hello\r\n"
    b"X-Api-Data: order-42\r\n"
    b"X-Category: receipt\r\n"
    b"Received: from a by b\r\n"
    b"Received: from c by d\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def start_relay(loop: LoopThread, amqp_url: str) -> Iterator[StartRelay]:
    """Start a relay with the given policy (default: the defaults of every relay key)."""
    with contextlib.ExitStack() as stack:

        def start(relay_policy: Any = None, **kwargs: Any) -> Relay:
            relay = Relay(amqp_url, relay_policy or policy(), **kwargs)
            return stack.enter_context(running_relay(loop, relay))

        yield start


def client(relay: Relay, source: str = "127.0.0.1") -> smtplib.SMTP:
    return smtplib.SMTP(relay.host, relay.port, timeout=15, source_address=(source, 0))


def reply(response: tuple[int, bytes]) -> str:
    code, text = response
    return f"{code} {text.decode()}"


def plain(user: str = USER, secret: str = SECRET) -> str:
    return base64.b64encode(f"\0{user}\0{secret}".encode()).decode()


# -- the happy path ----------------------------------------------------------------------------


def test_a_message_becomes_one_confirmed_delivery_per_recipient(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        assert smtp.mail("app@example.test")[0] == 250
        assert smtp.rcpt("someone@a.test")[0] == 250
        assert smtp.rcpt("other@b.test")[0] == 250
        answer = reply(smtp.data(MESSAGE))
    assert answer.startswith("250 2.0.0 Ok: queued as ")
    message_id = answer.rsplit(" ", 1)[1]

    deliveries = take_deliveries(loop, amqp_url)
    assert sorted(d.recipient for d in deliveries) == ["other@b.test", "someone@a.test"]
    assert len({d.delivery_id for d in deliveries}) == 2
    for d in deliveries:
        assert d.message_id == message_id
        assert (d.server, d.api_user, d.client_ip) == ("default", USER, "127.0.0.1")
        assert d.envelope_from == "app@example.test"
        assert d.recipient_domain == d.recipient.split("@")[1]
        assert d.subject == "hello"
        assert d.api_data == "order-42"
        # Message-ID was missing: added, carried in the content and as its own field.
        assert d.header_message_id.endswith("@relay.test>")
        assert d.content.startswith(f"Message-ID: {d.header_message_id}\r\n".encode())
        assert d.content.endswith(b"\r\nHello.\r\n")
        headers = {h.name: h.value for h in d.headers}
        assert headers["X-Category"] == "receipt"  # a filter's header
        assert "Received" not in headers  # it repeats, so no filter can use it
    poll_until(lambda: queued_events(loop, amqp_url) == 2, "two queued events")


def test_an_existing_message_id_is_kept(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        smtp.sendmail("app@example.test", ["x@a.test"], b"Message-ID: <m1@app>\r\n" + MESSAGE)
    (delivery,) = take_deliveries(loop, amqp_url)
    assert delivery.header_message_id == "<m1@app>"
    assert delivery.content.count(b"Message-ID") == 1


def test_the_same_recipient_twice_is_one_delivery(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        smtp.sendmail("app@example.test", ["x@a.test", "X@A.test"], MESSAGE)
    assert [d.recipient for d in take_deliveries(loop, amqp_url)] == ["x@a.test"]


def test_ehlo_announces_what_the_relay_does(start_relay: StartRelay) -> None:
    relay = start_relay(policy({"max_message_size": "2KiB"}))
    with client(relay) as smtp:
        smtp.ehlo()
        assert smtp.esmtp_features["size"] == "2048"
        assert smtp.has_extn("enhancedstatuscodes")
        assert smtp.has_extn("pipelining")
        assert smtp.has_extn("8bitmime")
        assert smtp.has_extn("dsn")
        assert smtp.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]  # loopback
        assert not smtp.has_extn("smtputf8")
        assert not smtp.has_extn("starttls")  # no certificate configured
        assert reply(smtp.noop()) == "250 2.0.0 OK"


# -- authentication ------------------------------------------------------------------------------


def test_auth_plain_and_login_against_the_api_users(start_relay: StartRelay) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.ehlo()
        assert reply(smtp.docmd("AUTH", f"PLAIN {plain()}")).startswith("235 2.7.0")
    with client(relay) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = USER, SECRET
        code, _ = smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
        assert code == 235
    with client(relay) as smtp:
        smtp.ehlo()
        answer = reply(smtp.docmd("AUTH", f"PLAIN {plain(secret='wrong')}"))
        assert answer.startswith("535 5.7.8")
        assert reply(smtp.docmd("AUTH", f"PLAIN {plain(user='nobody')}")).startswith("535 5.7.8")
        assert reply(smtp.docmd("AUTH", "PLAIN !!!")).startswith("501 5.5.2")
        assert reply(smtp.docmd("AUTH", "CRAM-MD5")).startswith("504 5.5.4")


def test_mail_without_auth_is_refused(start_relay: StartRelay) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.ehlo()
        assert reply(smtp.mail("app@example.test")) == "530 5.7.0 Authentication required"


def test_relaying_without_auth_only_from_relay_without_auth_from(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay(policy({"relay_without_auth_from": ["127.0.0.2/32"]}))
    with client(relay, source="127.0.0.2") as smtp:
        smtp.sendmail("app@example.test", ["x@a.test"], MESSAGE)
    (delivery,) = take_deliveries(loop, amqp_url)
    assert (delivery.server, delivery.api_user, delivery.client_ip) == (
        "default",
        "",
        "127.0.0.2",
    )
    with client(relay, source="127.0.0.3") as smtp:
        smtp.ehlo()
        assert reply(smtp.mail("app@example.test")).startswith("530 5.7.0")


# -- the relay settings of the policy ------------------------------------------------------------


def test_connections_from_outside_allowed_ips_get_554_and_only_quit(
    start_relay: StartRelay,
) -> None:
    relay = start_relay(policy({"allowed_ips": ["127.0.0.2/32"]}))
    refused = RawClient(relay.port, source="127.0.0.1")
    assert refused.reply() == (
        "554 5.7.1 relay.test Error: connections from 127.0.0.1 are not allowed"
    )
    # RFC 5321 §3.1: the server waits for QUIT, answering 503 to anything else.
    assert refused.command("EHLO me").startswith("503 5.5.1")
    assert refused.command("MAIL FROM:<a@b.test>").startswith("503 5.5.1")
    assert refused.command("QUIT") == "221 2.0.0 Bye"
    assert refused.closed_by_server()
    refused.close()
    allowed = RawClient(relay.port, source="127.0.0.2")
    assert allowed.reply().startswith("220 relay.test")
    allowed.close()


def test_connections_beyond_max_connections_get_421(start_relay: StartRelay) -> None:
    relay = start_relay(policy({"max_connections": 2}))
    first, second = RawClient(relay.port), RawClient(relay.port)
    assert first.reply().startswith("220 ")
    assert second.reply().startswith("220 ")
    third = RawClient(relay.port)
    assert third.reply() == "421 4.7.0 relay.test Error: too many connections, try again later"
    assert third.closed_by_server()
    third.close()
    first.close()
    poll_until(lambda: relay.handler.gate.open_connections == 1, "the first connection closed")
    fourth = RawClient(relay.port)
    assert fourth.reply().startswith("220 ")
    for c in (second, fourth):
        c.close()


def test_max_connections_of_the_authenticated_server(start_relay: StartRelay) -> None:
    relay = start_relay(policy(other={"max_connections": 1}))
    first, second = RawClient(relay.port), RawClient(relay.port)
    for c in (first, second):
        assert c.reply().startswith("220 ")
        c.command("EHLO me")
    assert first.command(f"AUTH PLAIN {plain(OTHER_USER, OTHER_SECRET)}").startswith("235")
    # The listener had room, but the campaigns server holds its one connection already.
    answer = second.command(f"AUTH PLAIN {plain(OTHER_USER, OTHER_SECRET)}")
    assert answer.startswith("421 4.7.0")
    assert second.closed_by_server()
    # A user of the other server is not held back by it.
    third = RawClient(relay.port)
    third.reply()
    third.command("EHLO me")
    assert third.command(f"AUTH PLAIN {plain()}").startswith("235")
    for c in (first, second, third):
        c.close()


def test_messages_beyond_rate_per_ip_get_450(start_relay: StartRelay) -> None:
    relay = start_relay(policy({"rate_per_ip": "2/min"}))
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        for _ in range(2):
            assert smtp.mail("app@example.test")[0] == 250
            smtp.rset()
        assert reply(smtp.mail("app@example.test")) == (
            "450 4.7.1 Error: too much mail from 127.0.0.1, try again later"
        )
        # The session goes on: the client may try again later.
        assert smtp.noop()[0] == 250


def test_messages_beyond_max_message_size_get_552(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay(policy({"max_message_size": "2KiB"}))
    too_big = MESSAGE + (b"x" * 70 + b"\r\n") * 40
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        assert reply(smtp.mail("app@example.test", ["SIZE=4096"])).startswith("552 5.3.4")
        assert smtp.mail("app@example.test", ["SIZE=1000"])[0] == 250
        assert smtp.rcpt("x@a.test")[0] == 250
        # A client that declared less than it sends is cut off at the limit too.
        assert reply(smtp.data(too_big)).startswith("552 5.3.4")
        assert smtp.mail("app@example.test")[0] == 250
        assert smtp.rcpt("x@a.test")[0] == 250
        assert smtp.data(MESSAGE)[0] == 250
    assert len(take_deliveries(loop, amqp_url)) == 1


def test_recipients_beyond_max_recipients_get_452(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay(policy({"max_recipients": 2}))
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        smtp.mail("app@example.test")
        assert smtp.rcpt("a@a.test")[0] == 250
        assert smtp.rcpt("b@b.test")[0] == 250
        assert reply(smtp.rcpt("c@c.test")) == "452 4.5.3 Error: too many recipients"
        assert smtp.data(MESSAGE)[0] == 250
    assert sorted(d.recipient for d in take_deliveries(loop, amqp_url)) == ["a@a.test", "b@b.test"]


# -- addresses -----------------------------------------------------------------------------------


def test_an_irregular_unquoted_local_part_is_accepted_and_quoted(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        assert reply(smtp.mail("irregular..pattern@example.test")) == "250 2.1.0 Ok"
        assert reply(smtp.rcpt("a.@docomo.test")) == "250 2.1.5 Ok"
        assert reply(smtp.rcpt('"a b"@x.test')) == "250 2.1.5 Ok"
        assert smtp.data(MESSAGE)[0] == 250
    deliveries = take_deliveries(loop, amqp_url)
    assert {d.envelope_from for d in deliveries} == {'"irregular..pattern"@example.test'}
    assert sorted(d.recipient for d in deliveries) == ['"a b"@x.test', '"a."@docomo.test']


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("<.lead@x.test>", "local part must not start with '.'"),
        ("<a(b@x.test>", "local part contains '(', which is only allowed inside quotes"),
        ("<user@-bad.test>", "each domain label must start with a letter or digit"),
        ("<user@x..test>", "domain must not contain '..'"),
        ("<user@[192.0.2.1]>", "address literals are not accepted as a domain"),
        ("<no-at-sign>", "address has no '@'"),
        ("user@x.test", "path must be enclosed in angle brackets (RFC 5321 4.1.2)"),
        ("<üser@x.test>", "address contains the non-ASCII character U+00FC; "),
    ],
)
def test_an_invalid_address_gets_553_with_the_reason(
    start_relay: StartRelay, path: str, reason: str
) -> None:
    relay = start_relay()
    raw = RawClient(relay.port)
    raw.reply()
    raw.command("EHLO me")
    assert raw.command(f"AUTH PLAIN {plain()}").startswith("235")
    assert raw.command(f"MAIL FROM:{path}").startswith(f"553 5.1.3 {reason}")
    assert raw.command("MAIL FROM:<app@example.test>") == "250 2.1.0 Ok"
    assert raw.command(f"RCPT TO:{path}").startswith(f"553 5.1.3 {reason}")
    raw.close()


def test_the_null_sender_is_accepted_but_not_as_recipient(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        assert reply(smtp.docmd("MAIL FROM:<>")) == "250 2.1.0 Ok"
        assert reply(smtp.docmd("RCPT TO:<>")).startswith("553 5.1.3 null path")
        assert smtp.rcpt("x@a.test")[0] == 250
        assert smtp.data(MESSAGE)[0] == 250
    assert [d.envelope_from for d in take_deliveries(loop, amqp_url)] == [""]


def test_command_sequence_and_parameters(start_relay: StartRelay) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        assert reply(smtp.rcpt("x@a.test")) == "503 5.5.1 Error: need MAIL command"
        assert reply(smtp.docmd("DATA")).startswith("503 5.5.1")
        assert reply(smtp.docmd("MAIL TO:<a@b.test>")).startswith("501 5.5.4 Syntax")
        assert reply(smtp.docmd("MAIL FROM:<a@b.test> SMTPUTF8")).startswith("555 5.5.4")
        assert reply(smtp.mail("a@b.test", ["BODY=BINARYMIME"])).startswith("501 5.5.4")
        assert smtp.mail("a@b.test", ["BODY=8BITMIME"])[0] == 250
        assert reply(smtp.mail("a@b.test")) == "503 5.5.1 Error: nested MAIL command"
        assert reply(smtp.rcpt("x@a.test", ["X-TRACK=1"])).startswith("555 5.5.4")
        assert reply(smtp.docmd("EXPN", "x")).startswith("502 5.5.1")
        assert reply(smtp.docmd("BOGUS")).startswith("500 5.5.2")


# -- DSN parameters (RFC 3461) -----------------------------------------------------------------


def test_dsn_parameters_are_carried_on_each_delivery(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        assert smtp.mail("app@example.test", ["RET=HDRS", "ENVID=QQ+2Bq+3D1"])[0] == 250
        assert (
            smtp.rcpt("a@a.test", ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Old+2Bx@a.test"])[0] == 250
        )
        assert smtp.rcpt("b@b.test", ["notify=never"])[0] == 250
        assert smtp.rcpt("c@b.test")[0] == 250
        assert smtp.data(MESSAGE)[0] == 250
    by_recipient = {d.recipient: d for d in take_deliveries(loop, amqp_url)}
    a, b, c = (by_recipient[r].dsn for r in ("a@a.test", "b@b.test", "c@b.test"))
    assert (a.notify_given, a.notify_never, a.notify_success, a.notify_failure) == (
        True,
        False,
        True,
        False,
    )
    assert a.notify_delay
    assert a.original_recipient == "rfc822;Old+x@a.test"  # xtext decoded
    assert (b.notify_given, b.notify_never) == (True, True)
    assert not c.notify_given and not c.original_recipient
    for request in (a, b, c):
        assert request.ret == 2  # HDRS
        assert request.envelope_id == "QQ+q=1"


def test_a_message_without_dsn_parameters_carries_no_request(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        smtp.sendmail("app@example.test", ["x@a.test"], MESSAGE)
    (delivery,) = take_deliveries(loop, amqp_url)
    assert not delivery.HasField("dsn")


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (
            "MAIL FROM:<a@b.test> RET=BODY",
            "501 5.5.4 Error: bad RET parameter: expected FULL or HDRS",
        ),
        ("MAIL FROM:<a@b.test> RET=FULL RET=HDRS", "501 5.5.4 Error: RET parameter given twice"),
        ("MAIL FROM:<a@b.test> ENVID=a+zz", "501 5.5.4 Error: bad ENVID parameter: "),
        ("MAIL FROM:<a@b.test> ENVID=" + "x" * 101, "501 5.5.4 Error: bad ENVID parameter: longer"),
    ],
)
def test_bad_mail_dsn_parameters_get_501(
    start_relay: StartRelay, command: str, answer: str
) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        assert reply(smtp.docmd(command)).startswith(answer)
        assert smtp.mail("a@b.test")[0] == 250  # the session goes on


@pytest.mark.parametrize(
    ("parameter", "answer"),
    [
        ("NOTIFY=NEVER,SUCCESS", "bad NOTIFY parameter: NEVER cannot be combined"),
        ("NOTIFY=SOMETIMES", "bad NOTIFY parameter: unknown value 'SOMETIMES'"),
        ("NOTIFY=", "bad NOTIFY parameter: expected NEVER or a list"),
        ("NOTIFY=DELAY,DELAY", "bad NOTIFY parameter: a value is repeated"),
        ("ORCPT=a@b.test", "bad ORCPT parameter: expected addr-type;address"),
        ("ORCPT=rfc822;a+2", "bad ORCPT parameter: '+' at 2 must be followed"),
        ("ORCPT=rfc822;", "bad ORCPT parameter: the address must be printable"),
    ],
)
def test_bad_rcpt_dsn_parameters_get_501(
    start_relay: StartRelay, parameter: str, answer: str
) -> None:
    relay = start_relay()
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        assert smtp.mail("a@b.test")[0] == 250
        assert reply(smtp.rcpt("x@a.test", [parameter])).startswith(f"501 5.5.4 Error: {answer}")
        assert smtp.rcpt("x@a.test", ["NOTIFY=FAILURE"])[0] == 250


# -- DATA --------------------------------------------------------------------------------------


def authenticated_raw(relay: Relay) -> RawClient:
    raw = RawClient(relay.port)
    raw.reply()
    raw.command("EHLO me")
    assert raw.command(f"AUTH PLAIN {plain()}").startswith("235")
    return raw


def test_data_ends_only_at_a_lone_dot_and_is_unstuffed(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    raw = authenticated_raw(relay)
    # "..leading dot" is ".leading dot" dot-stuffed (RFC 5321 §4.5.2).
    body = b"Subject: dots\r\n\r\nA sentence.\r\n..leading dot\r\n" + b"x" * 900 + b".\r\n"
    big_part = (b"y" * 70 + b".\r\n") * 2000  # well past one read of the stream
    raw.command("MAIL FROM:<app@example.test>")
    raw.command("RCPT TO:<x@a.test>")
    assert raw.command("DATA").startswith("354 ")
    # One write: the data, its end, and a pipelined QUIT (RFC 2920) that must not be lost.
    raw.send(body + big_part + b"\r\n.\r\nQUIT\r\n")
    assert raw.reply().startswith("250 2.0.0 Ok: queued as ")
    assert raw.reply() == "221 2.0.0 Bye"
    raw.close()
    (delivery,) = take_deliveries(loop, amqp_url)
    assert delivery.content.endswith(b"\r\n" + big_part + b"\r\n")
    assert b"\r\n.leading dot\r\n" in delivery.content
    assert b"A sentence.\r\n" in delivery.content


def test_an_empty_message_and_a_too_long_line(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    raw = authenticated_raw(relay)
    raw.command("MAIL FROM:<app@example.test>")
    raw.command("RCPT TO:<x@a.test>")
    raw.command("DATA")
    assert raw.command(".").startswith("250 2.0.0")
    raw.command("MAIL FROM:<app@example.test>")
    raw.command("RCPT TO:<x@a.test>")
    raw.command("DATA")
    raw.send(b"Subject: long\r\n\r\n" + b"z" * 999 + b"\r\n")
    assert raw.command(".").startswith("500 5.5.2")
    raw.close()
    (delivery,) = take_deliveries(loop, amqp_url)
    assert delivery.content.startswith(b"Message-ID: ")


# -- failures stay SMTP ------------------------------------------------------------------------


def test_a_client_leaving_mid_data_publishes_nothing(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay()
    raw = RawClient(relay.port)
    raw.reply()
    raw.command("EHLO me")
    assert raw.command(f"AUTH PLAIN {plain()}").startswith("235")
    assert raw.command("MAIL FROM:<app@example.test>").startswith("250")
    assert raw.command("RCPT TO:<x@a.test>").startswith("250")
    assert raw.command("DATA").startswith("354")
    raw.send(b"Subject: half\r\n\r\nthe first half of the body")
    raw.close()
    poll_until(lambda: relay.handler.gate.open_connections == 0, "the relay saw the client go")
    assert queued_deliveries(loop, amqp_url) == 0
    assert queued_events(loop, amqp_url) == 0


def test_an_unexpected_error_is_a_451_not_a_traceback(
    start_relay: StartRelay, loop: LoopThread, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = start_relay()

    async def broken_submit(*args: object) -> None:
        raise KeyError("a bug")

    def broken_rcpt(*args: object) -> str:
        raise ZeroDivisionError("another bug")

    monkeypatch.setattr(smtp_module, "publish_deliveries", broken_submit)
    with client(relay) as smtp:
        smtp.login(USER, SECRET)
        smtp.mail("app@example.test")
        smtp.rcpt("x@a.test")
        answer = reply(smtp.data(MESSAGE))
        assert answer == "451 4.3.0 Error: temporary local problem, try again later"
        monkeypatch.setattr(relay.handler, "rcpt", broken_rcpt)
        smtp.mail("app@example.test")
        assert reply(smtp.rcpt("x@a.test")).startswith("451 4.3.0")
    assert queued_deliveries(loop, amqp_url) == 0
