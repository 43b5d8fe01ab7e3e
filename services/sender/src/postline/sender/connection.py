"""An SMTP session's connection once it is open: writes, and the server's replies in order.

aiosmtplib opens the session (greeting, EHLO, STARTTLS); then :class:`SmtpConnection` takes the
transport over (``transport.set_protocol``) for the transactions, RSET and QUIT. It parses
every complete reply a read brings and queues them, so commands written together (RFC 2920
PIPELINING) get their replies however the server's writes arrive: all in one read, or a reply
split over several. aiosmtplib's protocol parses one reply per read and ignores data that
comes while a parsed reply waits to be taken, so it cannot read pipelined replies.

Each reply is waited for with its own timeout, started when the reply before it was taken
(as a client reading them one by one would). A reply that came before it is asked for (the
``421`` of a server closing an idle session, the replies to a pipelined group) is taken
without waiting. After the connection ends, replies that came before the end can still be
read; then every read raises :class:`Disconnected`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

from aiosmtplib import SMTPResponse

from postline.common.runtime import within

_MAX_LINE = 8192  # aiosmtplib's limit for a reply line


class Disconnected(Exception):
    """The connection ended (closed by the server, reset, or closed here)."""


class MalformedReply(Exception):
    """The server wrote something that is not an SMTP reply; nothing after it can be trusted."""


class SmtpConnection(asyncio.Protocol):
    def __init__(self, transport: asyncio.Transport) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._buffer = bytearray()
        self._replies: deque[SMTPResponse] = deque()
        self._error: Exception | None = None  # what every read raises once the queue is empty
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._drained: asyncio.Future[None] | None = None

    @classmethod
    def take_over(cls, transport: asyncio.BaseTransport) -> SmtpConnection:
        """Become the protocol of an open transport (aiosmtplib's after it opened the session,
        with no reply outstanding)."""
        # cast: uvloop's TCP transport does not subclass asyncio.Transport, only acts like it.
        connection = cls(cast(asyncio.Transport, transport))
        transport.set_protocol(connection)
        return connection

    @property
    def connected(self) -> bool:
        return self._error is None and not self._transport.is_closing()

    def local_address(self) -> str:
        sockname = self._transport.get_extra_info("sockname")
        return str(sockname[0]) if sockname else ""

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._error is not None or self._transport.is_closing():
            raise Disconnected()
        self._transport.write(data)

    @property
    def writing_paused(self) -> bool:
        """The transport's buffer is full: :meth:`drained` waits for it to empty."""
        return self._paused

    async def drained(self, timeout: float) -> None:
        """Wait until the transport takes more data; raises :class:`TimeoutError` after
        ``timeout`` seconds, :class:`Disconnected` if the connection ends."""
        if self._paused and self._error is None:
            self._drained = self._loop.create_future()
            try:
                await within(self._drained, timeout)
            finally:
                self._drained = None
        if self._error is not None:
            raise Disconnected()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- reading ---------------------------------------------------------------------------

    async def reply(self, timeout: float) -> SMTPResponse:
        """The next reply; raises :class:`TimeoutError` when none comes within ``timeout``
        seconds, :class:`Disconnected` or :class:`MalformedReply` when none can come."""
        if not self._replies and self._error is None:
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self._replies:
            return self._replies.popleft()
        assert self._error is not None
        raise type(self._error)(*self._error.args)

    def data_received(self, data: bytes) -> None:
        if self._error is not None:
            return
        self._buffer += data
        try:
            while (response := self._parse()) is not None:
                self._replies.append(response)
        except MalformedReply as exc:
            self._error = exc
            self._buffer.clear()
            self._transport.close()
        if self._replies or self._error is not None:
            self._wake()

    def _parse(self) -> SMTPResponse | None:
        """The first complete reply in the buffer (taken out of it), or None."""
        buffer = self._buffer
        offset = 0
        lines: list[bytes] = []
        while True:
            end = buffer.find(b"\n", offset)
            if end < 0:
                if len(buffer) - offset > _MAX_LINE:
                    raise MalformedReply("Response too long")
                return None
            line = bytes(buffer[offset : end + 1])
            if len(line) > _MAX_LINE:
                raise MalformedReply("Response too long")
            if not line[:3].isdigit():
                text = line.decode("utf-8", errors="ignore")
                raise MalformedReply(f"Malformed SMTP response line: {text}")
            offset = end + 1
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                del buffer[:offset]
                text = b"\n".join(lines).decode("utf-8", "surrogateescape")
                return SMTPResponse(int(line[:3]), text)

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self._error is None:
            self._error = Disconnected()
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self._transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
