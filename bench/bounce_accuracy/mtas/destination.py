"""The far end for the MTAs under test: a scripted SMTP server standing in for the remote
mail servers, and a capture server standing in for the sender's mailbox, both on loopback.

The project's destination simulator (``postline.simulator``) answers by a fixed table of local
parts with one wording each; the cases here need a chosen reply per recipient (a provider's own
wording, a reply after DATA), so this is a small aiosmtpd server of its own.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"
REPLY_OK = "250 2.0.0 Ok: queued"
REPLY_RCPT_OK = "250 2.1.5 Ok"
RCPT = "rcpt"  # answer RCPT TO for that recipient
DATA = "data"  # accept the recipient, answer the end of DATA for the whole message


@dataclass(frozen=True)
class Reply:
    """A scripted answer: ``text`` is the whole reply (``{address}`` is replaced by the
    recipient; several lines are separated by ``\\n`` and sent as a multi-line reply)."""

    text: str
    stage: str = RCPT


@dataclass(frozen=True)
class Received:
    """A message one of the servers took: its envelope and its bytes as a mailbox holds them
    (the capture server adds ``Return-Path``, as a final delivery does, RFC 5321 §4.4)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    arrived: float = field(default_factory=time.time)


class Destination:
    """Runs, on a thread of its own, the scripted server (``port``), the capture server
    (``capture_port``), a silent server that accepts connections and never greets
    (``silent_port``: timeouts) and holds a free port where nothing listens (``refused_port``:
    connection refused). Use as a context manager::

        with Destination() as destination:
            destination.script("nobody@remote.test", Reply("550 5.1.1 <{address}>: no such user"))
            ...  # route the remote domains to HOST:destination.port and the sender's
            ...  # domain to HOST:destination.capture_port
            notices = destination.wait_for_notices("case-1@sender.test", timeout=60)

    Every other recipient is accepted (``250``).
    """

    host = HOST

    def __init__(self) -> None:
        self.port = 0
        self.capture_port = 0
        self.silent_port = 0
        self.refused_port = 0
        self._scripts: dict[str, Reply] = {}
        self._delivered: list[Received] = []
        self._notices: list[Received] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []

    def script(self, address: str, reply: Reply | str, stage: str = RCPT) -> None:
        """Answer ``address`` (case-insensitive) with ``reply`` at ``stage``."""
        if isinstance(reply, str):
            reply = Reply(reply, stage)
        if reply.stage not in (RCPT, DATA):
            raise ValueError(f"unknown stage {reply.stage!r}")
        with self._lock:
            self._scripts[address.lower()] = reply

    def scripted(self, address: str) -> Reply | None:
        with self._lock:
            return self._scripts.get(address.lower())

    def delivered(self, address: str | None = None) -> list[Received]:
        """Messages the scripted server accepted (for ``address``, or all)."""
        with self._lock:
            return [m for m in self._delivered if _for(m, address)]

    def notices(self, to: str | None = None) -> list[Received]:
        """Messages the capture server took (addressed to ``to``, or all), oldest first."""
        with self._lock:
            return [m for m in self._notices if _for(m, to)]

    def forget(self) -> None:
        """Drop every script, delivered message and notice: the next MTA's cases start clean.
        Two modules' cases may share a sender (opensmtpd's and own_sendmail's
        ``bulletin-os-02@sender.test``); without this, the second takes the first's notice."""
        with self._lock:
            self._scripts.clear()
            self._delivered.clear()
            self._notices.clear()

    def wait_for_notices(self, to: str, count: int = 1, timeout: float = 60.0) -> list[Received]:
        """The notices to ``to`` once ``count`` have come, or those that came by ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.notices(to)
            if len(found) >= count:
                return found
            time.sleep(0.2)
        return self.notices(to)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.refused_port = _free_port()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Destination:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        remote = _ScriptedHandler(self)
        capture = _CaptureHandler(self)
        for handler, name in ((remote, "mx.remote.test"), (capture, "mailbox.sender.test")):
            server = await loop.create_server(functools.partial(_smtp, handler, name), HOST, 0)
            self._servers.append(server)
        silent = await loop.create_server(asyncio.Protocol, HOST, 0)
        self._servers.append(silent)
        self.port, self.capture_port, self.silent_port = (
            s.sockets[0].getsockname()[1] for s in self._servers
        )

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()

    def _took(self, kind: list[Received], message: Received) -> None:
        with self._lock:
            kind.append(message)


class _ScriptedHandler:
    def __init__(self, destination: Destination) -> None:
        self.destination = destination

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.destination.scripted(address)
        if reply is not None and reply.stage == RCPT:
            return _format(reply, address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return REPLY_RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            reply = self.destination.scripted(address)
            if reply is not None and reply.stage == DATA:
                return _format(reply, address)
        message = Received(
            str(envelope.mail_from), tuple(envelope.rcpt_tos), envelope.original_content or b""
        )
        self.destination._took(self.destination._delivered, message)
        return REPLY_OK


class _CaptureHandler:
    def __init__(self, destination: Destination) -> None:
        self.destination = destination

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        sender = "" if envelope.mail_from in (None, "<>") else str(envelope.mail_from)
        raw = f"Return-Path: <{sender}>\r\n".encode() + (envelope.original_content or b"")
        message = Received(sender, tuple(envelope.rcpt_tos), raw)
        self.destination._took(self.destination._notices, message)
        return REPLY_OK


def _smtp(handler: object, hostname: str) -> SMTP:
    return SMTP(handler, hostname=hostname, enable_SMTPUTF8=True)


def _format(reply: Reply, address: str) -> str:
    lines = reply.text.format(address=address).split("\n")
    code = lines[0][:3]
    # aiosmtpd sends what the hook returns as it is: a multi-line reply is joined with CRLF,
    # every line but the last with "-" after its code (RFC 5321 §4.2.1).
    return "\r\n".join(
        f"{code}-{line[4:]}" if i < len(lines) - 1 else line for i, line in enumerate(lines)
    )


def _for(message: Received, address: str | None) -> bool:
    return address is None or address.lower() in (r.lower() for r in message.rcpt_tos)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port
