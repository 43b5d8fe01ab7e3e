"""The sender's reply reader (``postline.sender.connection``) fed bytes as reads would bring
them: replies come out whole and in order however the bytes are cut."""

from __future__ import annotations

import asyncio
import re

import pytest

from postline.sender.connection import Disconnected, MalformedReply, SmtpConnection

GROUP = (
    b"250-2.1.0 sender\r\n250 2.1.0 Ok\r\n"
    b"550 5.1.1 <b@x.test>: User unknown\r\n"
    b"554 5.5.1 Error: no valid recipients\r\n"
)
EXPECTED = [
    (250, "2.1.0 sender\n2.1.0 Ok"),
    (550, "5.1.1 <b@x.test>: User unknown"),
    (554, "5.5.1 Error: no valid recipients"),
]


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _connection() -> SmtpConnection:
    return SmtpConnection.take_over(_Transport())  # type: ignore[arg-type]


async def _read_all(connection: SmtpConnection, count: int) -> list[tuple[int, str]]:
    return [tuple(await connection.reply(1)) for _ in range(count)]  # type: ignore[misc]


async def test_every_cut_of_a_group_gives_the_same_replies() -> None:
    for cut in range(1, len(GROUP)):
        connection = _connection()
        connection.data_received(GROUP[:cut])
        connection.data_received(GROUP[cut:])
        assert await _read_all(connection, 3) == EXPECTED, cut


async def test_a_byte_at_a_time_while_waiting() -> None:
    connection = _connection()

    async def feed() -> None:
        for i in range(len(GROUP)):
            connection.data_received(GROUP[i : i + 1])
            await asyncio.sleep(0)

    feeding = asyncio.create_task(feed())
    assert await _read_all(connection, 3) == EXPECTED
    await feeding


async def test_replies_that_came_before_the_end_are_read_then_it_is_disconnected() -> None:
    connection = _connection()
    connection.data_received(b"421 4.4.2 closing\r\n")
    connection.connection_lost(None)
    assert not connection.connected
    assert tuple(await connection.reply(1)) == (421, "4.4.2 closing")
    with pytest.raises(Disconnected):
        await connection.reply(1)
    with pytest.raises(Disconnected):
        connection.write(b"RSET\r\n")


async def test_no_smtp_after_a_good_reply() -> None:
    connection = _connection()
    connection.data_received(b"250 2.1.0 Ok\r\nHTTP/1.1 400 Bad Request\r\n")
    assert tuple(await connection.reply(1)) == (250, "2.1.0 Ok")
    malformed = re.escape("Malformed SMTP response line: HTTP/1.1 400")
    with pytest.raises(MalformedReply, match=malformed):
        await connection.reply(1)
    assert not connection.connected


async def test_an_endless_line_is_not_a_reply() -> None:
    connection = _connection()
    connection.data_received(b"250 " + b"x" * 9000)
    with pytest.raises(MalformedReply, match="Response too long"):
        await connection.reply(1)


async def test_no_reply_in_time() -> None:
    connection = _connection()
    connection.data_received(b"250 2.1.0 Ok\r\n250-2.1.5")  # the second is not whole
    assert tuple(await connection.reply(1)) == (250, "2.1.0 Ok")
    with pytest.raises(TimeoutError):
        await connection.reply(0.05)
    connection.data_received(b" Ok\r\n250 2.1.5 Ok\r\n")  # a late reply is still read in order
    assert tuple(await connection.reply(1)) == (250, "2.1.5 Ok\n2.1.5 Ok")


async def test_drained_waits_while_writing_is_paused() -> None:
    connection = _connection()
    await connection.drained(1)  # not paused: at once
    connection.pause_writing()
    assert connection.writing_paused
    with pytest.raises(TimeoutError):
        await connection.drained(0.05)
    waiting = asyncio.create_task(connection.drained(1))
    await asyncio.sleep(0)
    connection.resume_writing()
    await waiting
