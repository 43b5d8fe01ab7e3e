"""The relay's session timeout (RFC 5321 §4.5.3.2.7): counted from the last command.

Each command moves a deadline and the session's one timer catches up with it
(`RelaySMTP._reset_timeout`), rather than a timer cancelled and made per command. A real
server on 127.0.0.1 with a short timeout, a raw client: commands keep a session open past the
timeout, silence ends it.
"""

from __future__ import annotations

import asyncio

import yaml

from postline.common.policy import parse_policy
from postline.ingress.relay import RelayHandler, start_smtp

TIMEOUT = 0.5


def _policy() -> object:
    data = {"version": 1, "servers": {"default": {"return_path_domain": "bounce.example.test"}}}
    return parse_policy(yaml.safe_dump(data))


async def _session(commands_for: float) -> tuple[float, bytes, int]:
    """Send NOOP every TIMEOUT/4 for ``commands_for`` seconds, then wait; (seconds from the
    last command to the close, what the client read, how many NOOPs it sent)."""
    policy = _policy()
    handler = RelayHandler(None, lambda: policy, "relay.test", session_timeout=TIMEOUT)  # type: ignore[arg-type]
    server = await start_smtp(handler, "127.0.0.1", 0, tls_context=None)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        read = await reader.readline()  # the greeting
        started = last = loop.time()
        sent = 0
        while loop.time() - started < commands_for:
            await asyncio.sleep(TIMEOUT / 4)
            last = loop.time()
            writer.write(b"NOOP\r\n")
            sent += 1
            read += await reader.readline()
        rest = await asyncio.wait_for(reader.read(), TIMEOUT * 20)  # b"" once closed
        return loop.time() - last, read + rest, sent
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_commands_keep_the_session_open_and_silence_ends_it() -> None:
    idle, read, sent = asyncio.run(_session(commands_for=TIMEOUT * 3))
    assert read.startswith(b"220 ")
    # Every NOOP was answered: the session outlived three timeouts.
    assert sent >= 6 and read.count(b"250 ") == sent, read
    # Closed a timeout after the last command, not at the first deadline.
    assert TIMEOUT * 0.9 <= idle <= TIMEOUT + 5, idle


def test_a_silent_client_is_closed_after_the_timeout() -> None:
    idle, read, _ = asyncio.run(_session(commands_for=0))
    assert read.startswith(b"220 ")
    assert TIMEOUT * 0.9 <= idle <= TIMEOUT + 5, idle
