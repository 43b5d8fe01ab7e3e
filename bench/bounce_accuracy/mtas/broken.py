"""Servers that break the SMTP protocol, for the MTA under test to meet (round 40): one greets
as an IMAP server does (a next hop that is no mail server: an MX pointing at the wrong
service), one takes the whole message and closes the connection without answering the end of
DATA (a connection lost in the middle of the transaction). Each runs on loopback in threads of
its own; use as a context manager, which closes both."""

from __future__ import annotations

import socket
import threading

from .destination import HOST

GREETING = b"* OK [CAPABILITY IMAP4rev1 LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"


class Broken:
    def __init__(self) -> None:
        self._sockets: list[socket.socket] = []
        self.garbage_port = self._listen(self._garbage)
        self.lost_port = self._listen(self._lost)

    def _listen(self, serve: object) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(16)
        self._sockets.append(listener)
        threading.Thread(target=self._accept, args=(listener, serve), daemon=True).start()
        port: int = listener.getsockname()[1]
        return port

    def _accept(self, listener: socket.socket, serve: object) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=serve, args=(connection,), daemon=True).start()  # type: ignore[arg-type]

    @staticmethod
    def _garbage(connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as lines:
            connection.sendall(GREETING)
            for _ in lines:
                connection.sendall(b"* BAD Error in IMAP command received by server.\r\n")

    @staticmethod
    def _lost(connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 mx.quince.test ESMTP\r\n")
            for line in lines:
                verb = line[:4].upper()
                if verb == b"DATA":
                    connection.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    for body in lines:
                        if body in (b".\r\n", b".\n"):
                            return  # the whole message taken: closed, no reply
                elif verb == b"QUIT":
                    connection.sendall(b"221 Bye\r\n")
                    return
                else:
                    connection.sendall(b"250 mx.quince.test\r\n")

    def __enter__(self) -> Broken:
        return self

    def __exit__(self, *exc: object) -> None:
        for listener in self._sockets:
            listener.close()
