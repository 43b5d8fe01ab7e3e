"""Reading an SMTP DATA section (RFC 5321 §4.1.1.4): pure, no socket in sight.

The protocol hands this reader what arrives from the connection, in whatever pieces
(`take`), and the reader says when the data ended: at a ``.CRLF`` that starts a line, i.e.
the ``CRLF.CRLF`` that closes it (a bare LF or CR never ends it), and what came after it.
Past the size limit the rest is still read, and dropped, since RFC 5321 §4.2.5 puts the reply
after the data. Then ``refusal`` names the reply a too large message or a too long line
gets, and ``content`` is the message with the dot-stuffing undone.
"""

from __future__ import annotations

from postline.ingress import replies

# RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF.
MAX_LINE = 998
END = b".\r\n"
CLOSING = b"\r\n.\r\n"


class DataReader:
    def __init__(self, size_limit: int = 0) -> None:
        self.size_limit = size_limit  # 0: none
        self.size = 0  # bytes of data seen (after the DATA line, before the final dot)
        self.too_big = False
        self.ended = False
        self._chunks: list[bytes] = []
        # The two bytes before the next piece; the DATA command's own CRLF comes first, so an
        # empty message (".CRLF" right away) ends like any other.
        self._tail = b"\r\n"
        # The last bytes `take` was given, held back while they may begin the closing
        # sequence (fewer than its five bytes).
        self._held = b""

    def take(self, chunk: bytes) -> bytes | None:
        """Take what arrived; None while the data goes on, else the bytes after its end
        (the client's next commands, if it pipelined them)."""
        stream = self._held + chunk if self._held else chunk
        end = (self._tail + stream).find(CLOSING)
        if end < 0:
            keep = len(CLOSING) - 1
            self._held = stream[-keep:]
            if len(stream) > keep:
                self.feed(stream[:-keep])
            return None
        end += len(CLOSING) - len(self._tail)
        self._held = b""
        self.feed(stream[:end])
        return stream[end:]

    def feed(self, piece: bytes) -> bool:
        """Take the next piece of the stream, one that ends at the end of the data if it
        holds it (at a ``.CRLF``); True once it did."""
        if self.ended:
            raise ValueError("the data has ended")
        ended = piece.endswith(END) and (self._tail + piece[-5:])[-5:-3] == b"\r\n"
        self._tail = (self._tail + piece[-2:])[-2:]
        if ended:
            piece = piece[: -len(END)]
        self.size += len(piece)
        if self.size_limit and self.size > self.size_limit:
            self.too_big = True
            self._chunks.clear()  # keep counting, stop keeping
        elif not self.too_big:
            self._chunks.append(piece)
        self.ended = ended
        return ended

    @property
    def raw(self) -> bytes:
        """The data as sent, still dot-stuffed, without the final ``.CRLF``."""
        # Joined once: `refusal` and `content` both read it.
        if len(self._chunks) > 1:
            self._chunks[:] = [b"".join(self._chunks)]
        return self._chunks[0] if self._chunks else b""

    def refusal(self) -> str | None:
        """The reply for data that cannot be taken (too large, a line too long), or None."""
        if self.too_big:
            return replies.MESSAGE_TOO_BIG
        if longest_line(self.raw) > MAX_LINE:
            return replies.LINE_TOO_LONG
        return None

    @property
    def content(self) -> bytes:
        return unstuffed(self.raw)


def longest_line(data: bytes) -> int:
    return max(map(len, data.split(b"\r\n")), default=0)


def unstuffed(data: bytes) -> bytes:
    # RFC 5321 §4.5.2: a line starting with "." had one more added by the client.
    return (b"\r\n" + data).replace(b"\r\n.", b"\r\n")[2:]
