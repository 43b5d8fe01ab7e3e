"""The sender's SMTP transaction with and without RFC 2920 PIPELINING, against a scripted
destination on 127.0.0.1 that records how the client's bytes arrived and writes its replies
as a test says: all of a group's in one write, or cut into pieces that arrive apart."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from postline.sender.smtp import Endpoint, SmtpSession, SmtpTimeouts
from postline.sender.tls import TlsContexts
from postline.v1 import delivery_pb2
from tests.polling import apoll_until

TIMEOUTS = SmtpTimeouts(
    connect=5, greeting=5, ehlo=5, starttls=5, mail=5, rcpt=5, data_init=5,
    data_block=5, data_end=5, rset=5, quit=1,
)  # fmt: skip
MESSAGE = b"Subject: hi\r\n\r\nline one\r\n.starts with a dot\r\n"
ACCEPTED = {
    b"MAIL": b"250 2.1.0 Ok\r\n",
    b"RCPT": b"250 2.1.5 Ok\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b".": b"250 2.0.0 Ok: queued as 1\r\n",
    b"RSET": b"250 2.0.0 Ok\r\n",
    b"QUIT": b"221 2.0.0 Bye\r\n",
}
NO_RECIPIENTS = b"554 5.5.1 Error: no valid recipients\r\n"


@dataclass
class Destination:
    """What the scripted server answers (``None``: never) and what it saw."""

    pipelining: bool = True
    replies: dict[bytes, bytes | None] = field(default_factory=lambda: dict(ACCEPTED))
    piece: int = 0  # > 0: replies written this many bytes at a time, each piece on its own
    reads: list[bytes] = field(default_factory=list)  # after EHLO, as the server read them
    commands: list[bytes] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)


class _Server(asyncio.Protocol):
    def __init__(self, destination: Destination) -> None:
        self.d = destination
        self.buffer = b""
        self.in_data = False
        self.after_ehlo = False
        self.out: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.writer: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.writer = asyncio.get_running_loop().create_task(self.write_out())
        self.out.put_nowait(b"220 mx.test ESMTP\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.writer is not None:
            self.writer.cancel()

    async def write_out(self) -> None:
        while True:
            data = await self.out.get()
            assert self.transport is not None
            if not self.d.piece:
                self.transport.write(data)
                continue
            for start in range(0, len(data), self.d.piece):
                self.transport.write(data[start : start + self.d.piece])
                await asyncio.sleep(0.005)  # each piece a read of its own at the client

    def data_received(self, data: bytes) -> None:
        if self.after_ehlo:
            self.d.reads.append(data)
        self.buffer += data
        answers = b""
        while True:
            if self.in_data:
                # The DATA line's CRLF is the one before an empty message's dot.
                end = (b"\r\n" + self.buffer).find(b"\r\n.\r\n")
                if end < 0:
                    break
                self.d.messages.append(self.buffer[:end])
                self.buffer = self.buffer[end + 3 :]
                self.in_data = False
                answers += self.answer(b".") or b""
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                break
            line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2 :]
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"EHLO":
                extensions = b"250-PIPELINING\r\n" if self.d.pipelining else b""
                answers += b"250-mx.test\r\n250-SIZE 10000000\r\n" + extensions
                answers += b"250 ENHANCEDSTATUSCODES\r\n"
                self.after_ehlo = True
                continue
            self.d.commands.append(line)
            reply = self.answer(verb)
            if reply is None:
                break  # hangs: answers nothing more
            answers += reply
            if verb == b"DATA" and reply.startswith(b"354"):
                self.in_data = True
        if answers:
            self.out.put_nowait(answers)  # a group's replies in one write

    def answer(self, verb: bytes) -> bytes | None:
        return self.d.replies.get(verb, b"500 5.5.2 unknown\r\n")


@pytest.fixture
async def destination() -> AsyncIterator[tuple[Destination, Endpoint]]:
    d = Destination()
    server = await asyncio.get_running_loop().create_server(lambda: _Server(d), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield d, Endpoint("127.0.0.1", port, "mx.test", "", delivery_pb2.TLS_MODE_NONE)
    server.close()


async def _open(endpoint: Endpoint, timeouts: SmtpTimeouts = TIMEOUTS) -> SmtpSession:
    return await SmtpSession.open(
        endpoint, helo_name="sender.test", timeouts=timeouts, tls=TlsContexts(None)
    )


async def _send(session: SmtpSession, rcpt: str = "b@x.test") -> tuple[int, str, str]:
    reply = await session.send("a@sender.test", rcpt, MESSAGE)
    return reply.code, reply.enhanced_status, reply.stage


STUFFED = b"Subject: hi\r\n\r\nline one\r\n..starts with a dot\r\n"


async def test_mail_rcpt_and_data_go_in_one_write_and_the_message_in_another(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    session = await _open(endpoint)
    assert session.pipelining
    assert await _send(session) == (250, "2.0.0", "data")
    assert await _send(session, "c@x.test") == (250, "2.0.0", "data")  # reused, no RSET
    await session.close()
    size = len(STUFFED) + 3
    group = b"MAIL FROM:<a@sender.test> SIZE=%d\r\nRCPT TO:<%s>\r\nDATA\r\n"
    assert d.reads[:4] == [
        group % (size, b"b@x.test"),
        STUFFED + b".\r\n",
        group % (size, b"c@x.test"),
        STUFFED + b".\r\n",
    ]
    assert d.messages == [STUFFED, STUFFED]
    assert d.commands[-1] == b"QUIT"


async def test_replies_cut_into_pieces_that_arrive_apart(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    d.piece = 5
    d.replies[b"MAIL"] = b"250-2.1.0 sender\r\n250 2.1.0 Ok\r\n"  # a multi-line reply too
    session = await _open(endpoint)
    reply = await session.send("a@sender.test", "b@x.test", MESSAGE)
    assert (reply.code, reply.text) == (250, "2.0.0 Ok: queued as 1")
    assert await _send(session) == (250, "2.0.0", "data")
    assert session.usable
    assert len(d.messages) == 2


async def test_a_rejected_recipient_is_the_answer_and_rset_keeps_the_session(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    d.replies[b"RCPT"] = b"550 5.1.1 <b@x.test>: Recipient address rejected: User unknown\r\n"
    d.replies[b"DATA"] = NO_RECIPIENTS
    session = await _open(endpoint)
    reply = await session.send("a@sender.test", "b@x.test", MESSAGE)
    assert (reply.code, reply.enhanced_status, reply.stage) == (550, "5.1.1", "rcpt")
    assert "User unknown" in reply.text
    assert await session.reset()
    d.replies.update(ACCEPTED)
    assert await _send(session) == (250, "2.0.0", "data")
    assert [c.split(b" ")[0] for c in d.commands] == [
        b"MAIL", b"RCPT", b"DATA", b"RSET", b"MAIL", b"RCPT", b"DATA",
    ]  # fmt: skip
    assert d.messages == [STUFFED]


@pytest.mark.parametrize("data_reply", [b"503 5.5.1 Error: need RCPT command\r\n", NO_RECIPIENTS])
async def test_every_recipient_rejected_reads_datas_refusal(
    destination: tuple[Destination, Endpoint], data_reply: bytes
) -> None:
    d, endpoint = destination
    d.replies[b"RCPT"] = b"451 4.7.1 Greylisted, try again later\r\n"
    d.replies[b"DATA"] = data_reply
    session = await _open(endpoint)
    assert await _send(session) == (451, "4.7.1", "rcpt")
    assert session.usable
    assert await session.reset()
    d.replies.update(ACCEPTED)
    assert await _send(session) == (250, "2.0.0", "data")


async def test_data_let_through_after_every_recipient_was_rejected_gets_an_empty_message(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    d.replies[b"RCPT"] = b"550 5.1.1 User unknown\r\n"
    d.replies[b"."] = b"554 5.5.1 no valid recipients\r\n"
    session = await _open(endpoint)
    assert await _send(session) == (550, "5.1.1", "rcpt")
    assert d.messages == [b""]  # the lone dot, not the message
    assert await session.reset()


async def test_a_rejected_mail_is_the_answer_and_the_other_replies_are_read(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    d.replies[b"MAIL"] = b"550 5.7.1 sender refused\r\n"
    d.replies[b"RCPT"] = b"503 5.5.1 Error: need MAIL command\r\n"
    d.replies[b"DATA"] = b"503 5.5.1 Error: need RCPT command\r\n"
    session = await _open(endpoint)
    reply = await session.send("a@sender.test", "b@x.test", MESSAGE)
    assert (reply.code, reply.enhanced_status, reply.stage) == (550, "5.7.1", "mail")
    assert reply.text == "5.7.1 sender refused"
    assert await session.reset()  # every reply read: the session is in step
    d.replies.update(ACCEPTED)
    assert await _send(session) == (250, "2.0.0", "data")


async def test_a_rejected_mail_whose_other_replies_never_come_ends_the_session(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    d.replies[b"MAIL"] = b"550 5.7.1 sender refused\r\n"
    d.replies[b"RCPT"] = None
    session = await _open(endpoint, dataclasses.replace(TIMEOUTS, rcpt=0.2))
    assert await _send(session) == (550, "5.7.1", "mail")
    assert not session.usable
    assert not await session.reset()


async def test_a_timeout_in_the_middle_of_the_group_leaves_the_session_unusable(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    d.replies[b"RCPT"] = None
    session = await _open(endpoint, dataclasses.replace(TIMEOUTS, rcpt=0.2))
    reply = await session.send("a@sender.test", "b@x.test", MESSAGE)
    assert (reply.code, reply.enhanced_status, reply.stage) == (421, "4.4.2", "rcpt")
    assert "timeout after 0.2s waiting for the reply to RCPT" in reply.text
    assert not session.usable
    assert not await session.reset()
    assert d.messages == []


async def test_a_421_in_the_group_closes_the_session(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    d.replies[b"RCPT"] = b"421 4.4.2 try again later\r\n"
    session = await _open(endpoint)
    assert await _send(session) == (421, "4.4.2", "rcpt")
    assert not session.usable
    await apoll_until(lambda: not session._connection.connected, "the connection closed")


async def test_garbage_for_a_reply_is_a_protocol_error(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    d.replies[b"RCPT"] = b"HTTP/1.1 400 Bad Request\r\n"
    session = await _open(endpoint)
    reply = await session.send("a@sender.test", "b@x.test", MESSAGE)
    assert (reply.code, reply.enhanced_status, reply.stage) == (421, "4.5.0", "rcpt")
    assert "Malformed SMTP response line: HTTP/1.1 400" in reply.text
    assert not session.usable


async def test_without_pipelining_each_command_waits_for_its_reply(
    destination: tuple[Destination, Endpoint],
) -> None:
    d, endpoint = destination
    d.pipelining = False
    session = await _open(endpoint)
    assert not session.pipelining
    assert await _send(session) == (250, "2.0.0", "data")
    d.replies[b"RCPT"] = b"550 5.1.1 User unknown\r\n"
    assert await _send(session) == (550, "5.1.1", "rcpt")
    assert await session.reset()
    await session.close()
    size = len(STUFFED) + 3
    assert d.reads == [
        b"MAIL FROM:<a@sender.test> SIZE=%d\r\n" % size,
        b"RCPT TO:<b@x.test>\r\n",
        b"DATA\r\n",
        STUFFED + b".\r\n",
        b"MAIL FROM:<a@sender.test> SIZE=%d\r\n" % size,
        b"RCPT TO:<b@x.test>\r\n",  # refused: no DATA
        b"RSET\r\n",
        b"QUIT\r\n",
    ]
