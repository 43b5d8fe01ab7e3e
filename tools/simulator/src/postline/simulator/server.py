"""The SMTP side: an aiosmtpd protocol that records sessions and a handler that answers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from postline.simulator.behaviour import (
    DROP,
    GARBAGE,
    GARBAGE_REPLY,
    HANG,
    REPLY_INTERNAL_ERROR,
    REPLY_OK,
    REPLY_QUEUED,
    REPLY_RCPT_OK,
    Behaviour,
    domain_of,
)
from postline.simulator.records import Recorder

logger = logging.getLogger(__name__)


class SimulatorSMTP(SMTP):
    """One client connection; numbers the session and tells the recorder when it ends."""

    def __init__(
        self,
        handler: SimulatorHandler,
        recorder: Recorder,
        connections: set[SimulatorSMTP],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.recorder = recorder
        self._connections = connections
        self.session_id: int | None = None
        self.closed = asyncio.Event()
        # The paths of the current transaction exactly as the client wrote them (aiosmtpd's
        # parsed addresses drop quotes a local part does not strictly need).
        self.wire_mail = ""
        self.wire_rcpt = ""
        self.wire_rcpts: list[str] = []
        self.drop_after_data = False  # a recipient of this transaction breaks the server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # STARTTLS calls this again with the TLS transport: same connection, same session id.
        first = self.session_id is None
        super().connection_made(transport)
        if first:
            self.session_id = self.recorder.connection_opened()
            self._connections.add(self)
            logger.info("session %s opened from %s", self.session_id, self.peer)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        if self.session_id is not None and self in self._connections:
            self._connections.discard(self)
            self.recorder.connection_closed(self.session_id)
            logger.info("session %s closed", self.session_id)
        self.closed.set()

    async def smtp_MAIL(self, arg: str | None) -> None:
        self.wire_mail = wire_path(arg, "FROM:")
        self.wire_rcpts = []
        self.drop_after_data = False
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        self.wire_rcpt = wire_path(arg, "TO:")
        await super().smtp_RCPT(arg)

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        reply = status if isinstance(status, str) else status.decode("ascii", "replace")
        # RFC 5321 section 3.8: after a 421 the server closes the transmission channel.
        if reply.startswith("421") and self.transport is not None:
            self.transport.close()

    @property
    def peer(self) -> str:
        peer = self.session.peer if self.session is not None else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            host = f"[{peer[0]}]" if ":" in str(peer[0]) else peer[0]
            return f"{host}:{peer[1]}"
        return str(peer)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def break_off(self, garbage: bytes = b"") -> None:
        """Write ``garbage`` (if any), drop the connection, and wait to be cancelled: nothing
        more is answered."""
        if self.transport is not None:
            if garbage:
                self.transport.write(garbage)  # type: ignore[attr-defined]
            self.transport.abort()  # type: ignore[attr-defined]
        await asyncio.Event().wait()

    async def hang(self) -> None:
        """Answer nothing, ever: the client times out (or leaves)."""
        await asyncio.Event().wait()


class SimulatorHandler:
    """aiosmtpd hooks: answer each RCPT by its local part, record each accepted message."""

    def __init__(self, behaviour: Behaviour, recorder: Recorder, slow_seconds: float) -> None:
        self.behaviour = behaviour
        self.recorder = recorder
        self.slow_seconds = slow_seconds

    async def handle_EHLO(
        self,
        server: SimulatorSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # aiosmtpd reads commands one line at a time, so pipelined commands just work.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self,
        server: SimulatorSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        session_id = _session_id(server)
        domain = domain_of(address)
        self.recorder.rcpt_seen(session_id, domain)
        fault = self.behaviour.fault(address)
        if fault == HANG:
            logger.info("%s: session %s never answered", address, session_id)
            await server.hang()
        if fault == GARBAGE:
            logger.info("%s: session %s answered with garbage and closed", address, session_id)
            await server.break_off(GARBAGE_REPLY)
        if fault == DROP:
            server.drop_after_data = True
        reply = self.behaviour.rcpt_reply(address)
        if reply is not None:
            self.recorder.rcpt_rejected(domain)
            logger.info("%s rejected in session %s: %s", address, session_id, reply)
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        server.wire_rcpts.append(server.wire_rcpt)
        return REPLY_RCPT_OK

    async def handle_RSET(self, server: SimulatorSMTP, session: Session, envelope: Envelope) -> str:
        self.recorder.transaction_reset(_session_id(server))
        return REPLY_OK

    async def handle_DATA(self, server: SimulatorSMTP, session: Session, envelope: Envelope) -> str:
        session_id = _session_id(server)
        if any(self.behaviour.is_slow(rcpt) for rcpt in envelope.rcpt_tos):
            logger.info("session %s: slow recipient, answering DATA late", session_id)
            await asyncio.sleep(self.slow_seconds)
        raw = envelope.original_content or b""
        record = self.recorder.message_accepted(
            session_id=session_id,
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            peer=server.peer,
            tls=session.ssl is not None,
            helo=session.host_name,
            raw=raw,
            mail_path=server.wire_mail,
            rcpt_paths=list(server.wire_rcpts),
        )
        logger.info(
            "message %s accepted in session %s for %s", record.id, session_id, record.rcpt_tos
        )
        if server.drop_after_data:
            logger.info("message %s: session %s dropped before the reply", record.id, session_id)
            await server.break_off()
        return REPLY_QUEUED.format(message_id=record.id)

    async def handle_exception(self, error: Exception) -> str:
        logger.error("simulator hook failed", exc_info=error)
        return REPLY_INTERNAL_ERROR


def wire_path(arg: str | None, keyword: str) -> str:
    """The address of a ``MAIL FROM:``/``RCPT TO:`` argument as written, without the angle
    brackets (``<"a..b"@x> SIZE=9`` gives ``"a..b"@x``); a ``>`` inside quotes is kept."""
    text = (arg or "").strip()
    if text[: len(keyword)].upper() == keyword:
        text = text[len(keyword) :].strip()
    if not text.startswith("<"):
        return text.split(" ", 1)[0]
    quoted = False
    for i, char in enumerate(text[1:], start=1):
        if char == '"' and text[i - 1] != "\\":
            quoted = not quoted
        elif char == ">" and not quoted:
            return text[1:i]
    return text[1:]


def _session_id(server: SimulatorSMTP) -> int:
    assert server.session_id is not None, "hooks run only on an open connection"
    return server.session_id
