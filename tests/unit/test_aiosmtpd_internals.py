"""The aiosmtpd and asyncio internals the SMTP relay relies on, checked one by one.

``postline.ingress.smtp_protocol`` subclasses aiosmtpd's protocol and uses a few of its
private parts (and one of asyncio's). An upgrade that renames or changes one of them would not
fail loudly where it is used — admission could run twice after STARTTLS, AUTH could be offered
without TLS, DATA could be read line by line again — so this test names each of them and says
what breaks. When it fails after an upgrade: read the new aiosmtpd source for the part named,
adapt the relay, then this test.
"""

from __future__ import annotations

import asyncio
import inspect

import aiosmtpd
import pytest
from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from postline.ingress import smtp_protocol
from postline.ingress.smtp_protocol import RelaySMTP

# The version the relay was written against (services/ingress/pyproject.toml pins it).
AIOSMTPD_VERSION = "1.4.6"


def source(name: str) -> str:
    return inspect.getsource(getattr(SMTP, name))


def test_the_pinned_aiosmtpd_is_installed() -> None:
    assert aiosmtpd.__version__ == AIOSMTPD_VERSION, (
        "aiosmtpd changed: check each internal below against its new source"
    )


@pytest.mark.parametrize(
    ("name", "used_for"),
    [
        ("_original_transport", "admission once per connection, not again after STARTTLS"),
        ("_auth_require_tls", "AUTH without TLS only on loopback when the policy allows"),
        ("_auth_methods", "the AUTH mechanisms announced in EHLO"),
        ("_tls_protocol", "STARTTLS offered only before TLS; AUTH once TLS is up"),
        ("command_size_limits", "MAIL and RCPT get a whole 1000-octet line"),
        ("command_size_limit", "the limit of other commands"),
        ("data_size_limit", "SIZE in EHLO and the DATA limit"),
    ],
)
def test_attributes_the_relay_sets_or_reads(name: str, used_for: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        protocol = SMTP(object(), loop=loop)
        assert hasattr(protocol, name), f"aiosmtpd no longer has {name}: {used_for}"
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("name", "used_for"),
    [
        ("_handle_client", "the 554 greeting session of a refused client"),
        ("_call_handler_hook", "DATA handed to RelayHandler.handle_DATA"),
        ("_set_rset_state", "HELO/EHLO reset the transaction"),
        ("_set_post_data_state", "a transaction ends after DATA"),
        ("_strip_command_keyword", "MAIL FROM: / RCPT TO: arguments"),
        ("_reset_timeout", "the short timeout of a refused session; one timer per session"),
        ("_timeout_cb", "the session timeout's timer, set again when the deadline moved"),
        ("_create_envelope", "the relay's envelope class"),
        ("challenge_auth", "AUTH continuation lines (a line too long is caught around it)"),
        ("check_helo_needed", "commands before HELO/EHLO"),
        ("auth_PLAIN", "AUTH PLAIN decoded by aiosmtpd, checked by the relay"),
        ("auth_LOGIN", "AUTH LOGIN decoded by aiosmtpd, checked by the relay"),
        ("_authenticate", "credentials handed back instead of checked on the loop"),
    ],
)
def test_methods_the_relay_overrides_or_calls(name: str, used_for: str) -> None:
    assert callable(getattr(SMTP, name, None)), f"aiosmtpd no longer has {name}(): {used_for}"


def test_connection_made_sets_the_original_transport_only_on_starttls() -> None:
    # RelaySMTP.connection_made admits a client when _original_transport is None, i.e. on
    # the first call; aiosmtpd calls it again after STARTTLS with the plain transport kept.
    assert "_original_transport" in source("connection_made")
    assert "self._original_transport = self.transport" in source("smtp_STARTTLS")


def test_the_session_timer_is_the_one_the_relay_moves() -> None:
    # RelaySMTP._reset_timeout keeps aiosmtpd's one timer in _timeout_handle (cancelled when
    # the connection is lost) and its default duration in _timeout_duration; aiosmtpd resets
    # it before every command and closes the transport when it fires.
    assert "self._timeout_handle.cancel()" in source("connection_lost")
    assert "self._reset_timeout()" in source("_handle_client")
    assert "self.transport.close()" in source("_timeout_cb")
    assert "self._timeout_duration = timeout" in source("__init__")


def test_a_reply_written_without_drain_is_what_push_writes() -> None:
    # RelaySMTP._write does what aiosmtpd's push does (write the reply with its CRLF, then
    # drain), awaiting drain only when it has something to do: asyncio's drain raises the
    # reader's exception, yields when the transport closes, and waits while its flow control
    # has paused writing (`_paused`) or raises after the connection was lost
    # (`_connection_lost`).
    assert 'self._writer.write(response + b"\\r\\n")' in source("push")
    assert "await self._writer.drain()" in source("push")
    drain = inspect.getsource(asyncio.StreamWriter.drain)
    assert "self._reader.exception()" in drain and "self._transport.is_closing()" in drain
    assert "await self._protocol._drain_helper()" in drain
    helper = inspect.getsource(asyncio.StreamReaderProtocol._drain_helper)
    assert "if self._connection_lost:" in helper and "if not self._paused:" in helper


def test_the_reader_of_a_connection_has_the_limit_the_data_reader_swaps() -> None:
    # RelaySMTP._receive_data raises the StreamReader's limit while it reads DATA, so that
    # readuntil(".\r\n") takes large pieces; asyncio keeps it in a private attribute.
    async def make() -> asyncio.StreamReader:  # a StreamReader belongs to a running loop
        return asyncio.StreamReader(limit=1234)

    reader = asyncio.run(make())
    assert reader._limit == 1234  # type: ignore[attr-defined]
    assert "_limit" in inspect.getsource(asyncio.StreamReader.readuntil)


def test_readline_says_when_the_end_of_a_long_line_was_not_read() -> None:
    # RelaySMTP.challenge_auth reads the rest of a too long AUTH line only when asyncio says
    # its end had not come (otherwise the next command would be eaten).
    assert smtp_protocol.LINE_END_NOT_READ in inspect.getsource(asyncio.StreamReader.readuntil)
    assert "raise ValueError" in inspect.getsource(asyncio.StreamReader.readline)


def test_the_auth_flag_and_results() -> None:
    # auth_require_tls is copied to _auth_require_tls, which smtp_AUTH and EHLO read.
    assert "self._auth_require_tls = auth_require_tls" in source("__init__")
    assert "_auth_require_tls" in source("smtp_AUTH")
    # A failed AUTH marked handled gets no second reply (RelaySMTP._check relies on it).
    assert "auth_result.handled" in source("smtp_AUTH")
    assert AuthResult(success=False, handled=True).handled
    assert MISSING is not None


def test_the_relay_lists_its_own_commands_for_aiosmtpd() -> None:
    # RelaySMTP.__dir__ narrows what aiosmtpd's __init__ scans for smtp_* and auth_* names.
    assert "dir(self)" in source("__init__") or "getmembers" in source("__init__")
    names = RelaySMTP.__dir__(RelaySMTP.__new__(RelaySMTP))
    assert {"smtp_EHLO", "smtp_MAIL", "smtp_RCPT", "smtp_DATA", "smtp_VRFY", "auth_PLAIN"} <= set(
        names
    )


class _Handler:
    """What RelaySMTP reads of its handler, and a handler AUTH method of its own."""

    hostname = "relay.test"
    session_timeout = 300.0
    max_message_size = 1000

    def __dir__(self) -> list[str]:
        return ["auth_PLAIN", "handle_DATA"]

    async def handle_DATA(self, *_: object) -> str:
        return "250 OK"

    async def auth_PLAIN(self, *_: object) -> None:
        return None


def test_the_relay_fills_in_the_tables_aiosmtpd_would_have_built() -> None:
    # RelaySMTP hides its own names from aiosmtpd's per-connection scan and fills in
    # _smtp_methods and _auth_methods from a per-class table: the same tables, per aiosmtpd's
    # rules (smtp_X is command X; auth_X mechanism X or its __auth_mechanism_name__; the
    # handler's AUTH method wins over the protocol's).
    assert 'm.replace("smtp_", "")' in source("__init__")
    assert "__auth_mechanism_name__" in source("__init__")
    assert "for obj in (self, handler)" in source("__init__")
    loop = asyncio.new_event_loop()
    try:
        handler = _Handler()
        conn = RelaySMTP(handler, tls_context=None, loop=loop)  # type: ignore[arg-type]
    finally:
        loop.close()
    own = [n for n in dir(RelaySMTP) if n.startswith("smtp_")]
    assert {c: m.__func__ for c, m in conn._smtp_methods.items()} == {
        n.replace("smtp_", ""): getattr(RelaySMTP, n) for n in own
    }
    # The handler's tables are found once per handler; aiosmtpd's scan saw a stand-in, and
    # what it keeps of the handler is set again afterwards.
    assert "self.event_handler = handler" in source("__init__")
    assert "self._handle_hooks" in source("__init__") and "_ehlo_hook_ver" in source("__init__")
    assert conn.event_handler is handler
    assert conn._handle_hooks == {"DATA": handler.handle_DATA}
    assert conn._ehlo_hook_ver is None
    assert set(conn._auth_methods) == {"LOGIN", "PLAIN"}
    assert conn._auth_methods["LOGIN"].method.__func__ is RelaySMTP.auth_LOGIN
    assert conn._auth_methods["LOGIN"].is_builtin
    assert conn._auth_methods["PLAIN"].method == handler.auth_PLAIN
    assert not conn._auth_methods["PLAIN"].is_builtin
