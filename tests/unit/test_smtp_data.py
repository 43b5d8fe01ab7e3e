"""Reading DATA (``postline.ingress.smtp_data``) without a socket: pieces as a stream reader
hands them over (`feed`), and whatever the connection delivers, split anywhere (`take`)."""

from __future__ import annotations

import pytest

from postline.ingress import replies
from postline.ingress.smtp_data import DataReader, unstuffed


def pieces(stream: bytes, limit: int = 0) -> list[bytes]:
    """The stream as the relay reads it: readuntil(".\r\n") with the reader's ``limit``
    (0: none). A separator further than the limit makes asyncio raise LimitOverrunError with
    the bytes before it, which the relay reads as a piece; the separator comes next."""
    out = []
    while stream:
        end = stream.find(b".\r\n")
        if end < 0:
            cut = len(stream)
        elif limit and end > limit:
            cut = end
        else:
            cut = end + 3
        out.append(stream[:cut])
        stream = stream[cut:]
    return out


def read(stream: bytes, size_limit: int = 0, piece: int = 0) -> tuple[DataReader, int]:
    """Feed the pieces until the reader says the data ended; how many pieces it took."""
    reader = DataReader(size_limit)
    for used, chunk in enumerate(pieces(stream, piece), 1):
        if reader.feed(chunk):
            return reader, used
    raise AssertionError("the data never ended")


@pytest.mark.parametrize("piece", [0, 2, 5, 9])
def test_the_data_ends_at_crlf_dot_crlf_however_it_is_split(piece: int) -> None:
    reader, _ = read(b"Subject: x\r\n\r\nHello.\r\n.\r\n", piece=piece)
    assert reader.content == b"Subject: x\r\n\r\nHello.\r\n"
    assert reader.refusal() is None


def test_an_empty_message_ends_at_once() -> None:
    reader, used = read(b".\r\nMAIL FROM:<a@b.test>\r\n")
    assert (reader.content, used) == (b"", 1)


@pytest.mark.parametrize(
    "shape", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"x.\r\n", b"\r\n .\r\n"]
)
def test_nothing_but_crlf_dot_crlf_ends_it(shape: bytes) -> None:
    # An end only another MTA would see (bare LF or CR) never ends the data here, so a
    # second transaction hidden behind one stays message text (SMTP smuggling).
    hidden = b"MAIL FROM:<evil@a.test>\r\nRCPT TO:<victim@b.test>\r\nDATA\r\n"
    stream = b"Subject: x\r\n\r\nbody" + shape + hidden + b"\r\n.\r\n"
    reader, _ = read(stream)
    assert hidden in reader.content


def test_dot_stuffing_is_undone() -> None:
    reader, _ = read(b"..leading dot\r\n...two\r\nplain.\r\n.\r\n")
    assert reader.content == b".leading dot\r\n..two\r\nplain.\r\n"
    assert unstuffed(b"..a\r\n..\r\n") == b".a\r\n.\r\n"


def test_the_data_read_in_pieces_is_joined_once() -> None:
    reader = DataReader()
    for piece in (b"a\r\n.", b"b\r\n", b".\r\n"):
        reader.feed(piece)
    assert reader.raw is reader.raw
    assert reader.content == b"a\r\nb\r\n"


def test_past_the_size_limit_the_rest_is_read_and_dropped() -> None:
    reader, _ = read(b"x" * 50 + b"\r\n" + b"y" * 50 + b"\r\n.\r\n", size_limit=60)
    assert reader.too_big and reader.raw == b""
    assert reader.refusal() == replies.MESSAGE_TOO_BIG
    assert reader.size == 104


def test_a_line_over_1000_octets_is_refused() -> None:
    reader, _ = read(b"a" * 998 + b"\r\n.\r\n")
    assert reader.refusal() is None
    reader, _ = read(b"a" * 999 + b"\r\n.\r\n", piece=100)
    assert reader.refusal() == replies.LINE_TOO_LONG


def test_nothing_more_is_taken_after_the_end() -> None:
    reader, _ = read(b".\r\n")
    with pytest.raises(ValueError):
        reader.feed(b"more")


# -- take: what arrives from the connection, in any pieces ----------------------------------

NEXT = b"MAIL FROM:<a@b.test>\r\nQUIT\r\n"  # pipelined after the data (RFC 2920)


def take_all(stream: bytes, chunk: int, size_limit: int = 0) -> tuple[DataReader, bytes]:
    """``stream`` taken ``chunk`` bytes at a time; the reader and what came after the end."""
    reader = DataReader(size_limit)
    for start in range(0, len(stream), chunk):
        rest = reader.take(stream[start : start + chunk])
        if rest is not None:
            return reader, rest + stream[start + chunk :]
    raise AssertionError("the data never ended")


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 6, 7, 64, 10_000])
def test_take_finds_the_end_and_what_follows_however_it_arrives(chunk: int) -> None:
    hidden = b"\n.\nMAIL FROM:<evil@a.test>\r\n\r.\r\n.\n\r\n .\r\n"
    data = b"Subject: x\r\n\r\n..stuffed\r\n" + hidden + b"x" * 300 + b".\r\nend\r\n"
    reader, rest = take_all(data + b".\r\n" + NEXT, chunk)
    assert reader.content == unstuffed(data)[:-2] + b"\r\n"
    assert rest == NEXT
    assert reader.refusal() is None


@pytest.mark.parametrize("chunk", [1, 2, 3, 100])
def test_take_ends_an_empty_message_at_once(chunk: int) -> None:
    reader, rest = take_all(b".\r\n" + NEXT, chunk)
    assert (reader.content, rest) == (b"", NEXT)


def test_take_split_at_every_position() -> None:
    stream = b"a\r\n..b\r\n.\r\n" + NEXT
    for cut in range(1, len(stream)):
        reader = DataReader()
        rest = reader.take(stream[:cut])
        if rest is None:
            rest = reader.take(stream[cut:])
        else:
            rest += stream[cut:]
        assert (reader.content, rest) == (b"a\r\n.b\r\n", NEXT), cut


def test_take_past_the_size_limit_reads_to_the_end() -> None:
    reader, rest = take_all(b"x" * 50 + b"\r\n" + b"y" * 50 + b"\r\n.\r\n" + NEXT, 7, 60)
    assert reader.refusal() == replies.MESSAGE_TOO_BIG
    assert rest == NEXT
