"""A small POP3 server (RFC 1939) holding each case's message in a mailbox of its own, for
a mail retriever under test (fetchmail, round 34): it serves ``USER``/``PASS``, ``STAT``,
``LIST``, ``UIDL``, ``RETR``, ``TOP``, ``DELE``, ``RSET``, ``NOOP`` and ``QUIT`` on
127.0.0.1, and records which messages the retriever deleted (``deleted``), so a case can tell
whether the retriever kept a message it could not forward.

Each mailbox's password is its name; messages are kept as given (CRLF lines).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from .destination import HOST


class POP3Server:
    """POP3 on ``HOST``:``port`` while the context is open; ``mailboxes`` maps a user to its
    messages."""

    host = HOST

    def __init__(self, port: int, mailboxes: dict[str, list[bytes]], hostname: str) -> None:
        self.port = port
        self._mailboxes = mailboxes
        self._hostname = hostname
        self._deleted: dict[str, set[int]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def deleted(self, user: str) -> set[int]:
        """The numbers (from 1) of ``user``'s messages deleted by a session that ended with
        ``QUIT``."""
        with self._lock:
            return set(self._deleted.get(user, set()))

    def __enter__(self) -> POP3Server:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._session, HOST, self.port)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(line: str) -> None:
            writer.write(line.encode("ascii") + b"\r\n")

        send(f"+OK {self._hostname} POP3 ready")
        user = ""
        messages: list[bytes] = []
        marked: set[int] = set()
        authorised = False
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                command, _, argument = raw.decode("ascii", "replace").strip().partition(" ")
                command = command.upper()
                if command == "QUIT":
                    if authorised:
                        with self._lock:
                            self._deleted.setdefault(user, set()).update(marked)
                    send("+OK bye")
                    await writer.drain()
                    return
                if command == "CAPA":
                    writer.write(b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n")
                elif command == "USER":
                    user = argument
                    send("+OK")
                elif command == "PASS" and user in self._mailboxes and argument == user:
                    authorised = True
                    messages = self._mailboxes[user]
                    send("+OK logged in")
                elif not authorised:
                    send("-ERR not logged in")
                else:
                    self._transaction(send, writer, command, argument, messages, marked, user)
                await writer.drain()
        finally:
            writer.close()

    def _transaction(
        self,
        send: Callable[[str], None],
        writer: asyncio.StreamWriter,
        command: str,
        argument: str,
        messages: list[bytes],
        marked: set[int],
        user: str,
    ) -> None:
        live = [n for n in range(1, len(messages) + 1) if n not in marked]
        words = argument.split()
        number = int(words[0]) if words and words[0].isdigit() else 0
        if command == "STAT":
            send(f"+OK {len(live)} {sum(len(messages[n - 1]) for n in live)}")
        elif command in ("LIST", "UIDL") and not words:
            writer.write(b"+OK\r\n")
            for n in live:
                value = len(messages[n - 1]) if command == "LIST" else f"{user}-{n}"
                writer.write(f"{n} {value}\r\n".encode("ascii"))
            writer.write(b".\r\n")
        elif command == "RSET":
            marked.clear()
            send("+OK")
        elif command == "NOOP":
            send("+OK")
        elif number not in live:
            send("-ERR no such message")
        elif command == "LIST":
            send(f"+OK {number} {len(messages[number - 1])}")
        elif command == "UIDL":
            send(f"+OK {number} {user}-{number}")
        elif command in ("RETR", "TOP"):
            lines = messages[number - 1].removesuffix(b"\r\n").split(b"\r\n")
            if command == "TOP":
                blank = lines.index(b"") if b"" in lines else len(lines)
                lines = lines[: blank + 1 + (int(words[1]) if len(words) > 1 else 0)]
            writer.write(b"+OK\r\n")
            for line in lines:
                writer.write((b"." + line if line.startswith(b".") else line) + b"\r\n")
            writer.write(b".\r\n")
        elif command == "DELE":
            marked.add(number)
            send("+OK deleted")
        else:
            send("-ERR unknown command")
