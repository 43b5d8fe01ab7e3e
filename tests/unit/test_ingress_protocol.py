"""The relay's SMTP protocol on a real socket, without a broker: how it reads what arrives.

`RelaySMTP` parses the bytes in `data_received`; these check the reading itself — pipelined
commands answered in order, a command arriving a byte at a time, lines beyond the limits,
unknown commands, STARTTLS dropping what was pipelined behind it (RFC 3207 §4.2), and what a
client sends ahead of a command that waits read only up to a limit. The
transaction and its replies are the integration tests' (`tests/integration/test_smtp_*`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

from postline.common.policy import Policy, parse_policy
from postline.ingress.relay import RelayHandler, start_smtp
from postline.ingress.smtp_protocol import PIPELINE_LIMIT, RelayEnvelope, RelaySMTP
from postline.ingress.tls import server_context
from tests.tls_support import make_ca

Session = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _policy(relay: dict[str, object] | None = None) -> Policy:
    server: dict[str, object] = {"return_path_domain": "bounce.example.test"}
    if relay:
        server["relay"] = relay
    data = {"version": 1, "servers": {"default": server}}
    return parse_policy(yaml.safe_dump(data))


async def _reply(reader: asyncio.StreamReader) -> str:
    """One whole reply (its lines joined by LF)."""
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        if not line:
            raise ConnectionError("closed by the relay")
        lines.append(line.decode().rstrip("\r\n"))
        if line[3:4] != b"-":
            return "\n".join(lines)


def _talk(
    session: Session,
    tls: ssl.SSLContext | None = None,
    handler: RelayHandler | None = None,
) -> None:
    async def main() -> None:
        policy = _policy()
        nonlocal handler
        if handler is None:
            handler = RelayHandler(None, lambda: policy, "relay.test")  # type: ignore[arg-type]
        server = await start_smtp(handler, "127.0.0.1", 0, tls_context=tls)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert (await _reply(reader)).startswith("220 relay.test ")
            await session(reader, writer)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_pipelined_commands_are_answered_in_order() -> None:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"EHLO me\r\nNOOP\r\nMAIL FROM:<a@b.test>\r\nRSET x\r\nHELP DATA\r\nQUIT\r\n")
        assert (await _reply(reader)).startswith("250-relay.test\n250-PIPELINING")
        assert await _reply(reader) == "250 2.0.0 OK"
        # No AUTH and no server relaying for 127.0.0.1 without it.
        assert await _reply(reader) == "530 5.7.0 Authentication required"
        assert await _reply(reader) == "501 5.5.4 Syntax: RSET"
        assert await _reply(reader) == "250 2.0.0 Syntax: DATA"
        assert await _reply(reader) == "221 2.0.0 Bye"
        assert await asyncio.wait_for(reader.read(), 10) == b""

    _talk(session)


def test_a_command_sent_a_byte_at_a_time() -> None:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for byte in b"HELO me\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.001)
        assert await _reply(reader) == "250 relay.test"

    _talk(session)


def test_lines_beyond_the_limits_get_one_reply_each() -> None:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"NOOP " + b"x" * 600 + b"\r\n")  # past 512 octets
        assert await _reply(reader) == "500 5.5.2 Command line too long"
        writer.write(b"NOOP " + b"y" * 70_000)  # no end in sight: read on to the LF
        await writer.drain()
        writer.write(b"y" * 1000 + b"\r\nNOOP\r\n")
        assert await _reply(reader) == "500 5.5.2 Command line too long"
        assert await _reply(reader) == "250 2.0.0 OK"
        # MAIL and RCPT get a whole 1000-octet line after EHLO (the design's addresses).
        writer.write(b"EHLO me\r\nMAIL FROM:<" + b"a" * 700 + b"@b.test>\r\n")
        await _reply(reader)
        assert (await _reply(reader)).startswith("530 ")  # read whole, then refused
        writer.write(b"\r\n")
        assert await _reply(reader) == "500 5.5.2 Error: bad syntax"

    _talk(session)


def test_unknown_commands_are_refused_then_the_session_ends() -> None:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"BOGUS\r\n" * 5)
        for _ in range(4):
            assert await _reply(reader) == '500 5.5.2 Error: command "BOGUS" not recognized'
        assert await _reply(reader) == "502 5.5.1 Too many unrecognized commands, goodbye."
        assert await asyncio.wait_for(reader.read(), 10) == b""

    _talk(session)


def test_what_was_pipelined_after_starttls_is_dropped(tmp_path: Path) -> None:
    files = make_ca(tmp_path, "localhost", "127.0.0.1")
    client_context = ssl.create_default_context(cafile=str(files.ca_file))

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"EHLO me\r\n")
        assert "250-STARTTLS" in await _reply(reader)
        # RFC 3207 §4.2: a NOOP written in plain text behind STARTTLS must not be answered
        # inside TLS (a "STARTTLS injection" would otherwise let a third party add commands).
        writer.write(b"STARTTLS\r\nNOOP\r\n")
        assert await _reply(reader) == "220 2.0.0 Ready to start TLS"
        await writer.start_tls(client_context, server_hostname="localhost")
        writer.write(b"MAIL FROM:<a@b.test>\r\nEHLO me\r\n")
        # Forgotten with TLS: the EHLO before it (so MAIL needs HELO again).
        assert await _reply(reader) == "503 5.5.1 Error: send HELO first"
        ehlo = await _reply(reader)
        assert "STARTTLS" not in ehlo and "250-AUTH LOGIN PLAIN" in ehlo
        writer.write(b"STARTTLS\r\n")
        assert await _reply(reader) == "503 5.5.1 Error: TLS already active"

    _talk(session, tls=server_context(files.cert_file, files.key_file))


class _HeldPublish(RelayHandler):
    """Relays for loopback without AUTH; each message's publish waits until ``release``."""

    def __init__(self) -> None:
        policy = _policy({"relay_without_auth_from": ["127.0.0.0/8"]})
        super().__init__(None, lambda: policy, "relay.test")  # type: ignore[arg-type]
        self.release = asyncio.Event()
        self.connection: RelaySMTP | None = None

    async def data(self, conn: RelaySMTP, relay_envelope: RelayEnvelope) -> str:
        self.connection = conn
        await self.release.wait()
        return "250 OK queued"


def test_what_a_client_sends_ahead_of_a_waiting_publish_is_read_only_up_to_a_limit() -> None:
    handler = _HeldPublish()
    noops = 50_000  # 300 KB: far past PIPELINE_LIMIT

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"EHLO me\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
        writer.write(b"Subject: x\r\n\r\nhello\r\n.\r\n" + b"NOOP\r\n" * noops)
        for _ in range(4):
            await _reply(reader)  # EHLO, MAIL, RCPT, DATA's 354
        await asyncio.sleep(0.3)
        connection = handler.connection
        assert connection is not None
        # The kernel's and the client's buffers hold the rest; the relay stopped reading.
        assert connection._read_paused
        assert len(connection._buffer) <= PIPELINE_LIMIT + 256 * 1024
        handler.release.set()
        assert await _reply(reader) == "250 2.0.0 OK queued"
        for _ in range(noops):
            assert await _reply(reader) == "250 2.0.0 OK"
        assert not connection._read_paused
        writer.write(b"QUIT\r\n")
        assert await _reply(reader) == "221 2.0.0 Bye"

    _talk(session, handler=handler)
