"""One SMTP session to a destination: opened once, then one mail transaction at a time.

aiosmtplib opens the session (greeting, EHLO or HELO, STARTTLS); then the session's own
protocol (:mod:`postline.sender.connection`) takes the connection over, so that replies to
commands written together are read however they arrive. The session adds what a delivering
MTA needs:

* its own TCP connect, bound to the delivery's source IP, so connecting and waiting for the
  greeting have separate timeouts;
* every step bounded by its RFC 5321 §4.5.3.2 timeout (:class:`SmtpTimeouts`);
* ``MAIL``/``RCPT`` written from the addresses as they are, already in SMTP form and quoted
  where the address rules say (``"irregular..pattern"@x``), not re-parsed by a mail library;
* the message written with CRLF line ends and dot-stuffing (RFC 5321 §4.5.2), waiting for
  each block to drain (data block timeout) and then for the reply to the final dot;
* RFC 2920 PIPELINING when the last EHLO offered it: ``MAIL``, ``RCPT`` and ``DATA`` in one
  write, their replies read in order (each within its own timeout), the first unexpected one
  the transaction's answer; without it, one command at a time;
* every failure turned into a :class:`Reply` (nothing raises out of a transaction), and
  ``usable`` cleared whenever the session's state is no longer known (timeout, disconnect,
  421), so it is never reused.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass

import aiosmtplib

from postline.common.runtime import within
from postline.common.tls_modes import NONE, OPPORTUNISTIC, REQUIRED
from postline.sender import replies
from postline.sender.connection import Disconnected, MalformedReply, SmtpConnection
from postline.sender.replies import Reply
from postline.sender.tls import TlsContexts
from postline.v1.delivery_pb2 import TlsMode

logger = logging.getLogger(__name__)

_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")
_BLOCK = 64 * 1024


@dataclass(frozen=True, slots=True)
class SmtpTimeouts:
    """Seconds per step; defaults are RFC 5321 §4.5.3.2's (connect, RSET and QUIT Postfix's)."""

    connect: float = 30.0
    greeting: float = 300.0
    ehlo: float = 300.0
    starttls: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_block: float = 180.0
    data_end: float = 600.0
    rset: float = 20.0
    quit: float = 10.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a session goes and how; sessions are reused only for the same endpoint."""

    address: str  # the IP address connected to
    port: int
    hostname: str  # the MX or route host: TLS server name and certificate check
    source_ip: str  # "" lets the OS choose
    tls: TlsMode.ValueType

    def __str__(self) -> str:
        where = self.address if ":" not in self.address else f"[{self.address}]"
        name = f"{self.hostname}[{where}]" if self.hostname != self.address else where
        return name if self.port == 25 else f"{name}:{self.port}"

    @property
    def peer(self) -> str:
        """The address (and port when not 25) as results report it (``mx_address``)."""
        return self.address if self.port == 25 else f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class TlsInfo:
    version: str
    cipher: str
    verified: bool


class SessionFailed(Exception):
    """A session could not be opened; ``reply`` says why (and at which stage)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


class _TlsFallback(Exception):
    """Opportunistic STARTTLS failed: reconnect in plain text (RFC 7435 §3)."""


def wire_data(content: bytes) -> bytes:
    """The DATA payload: dot-stuffed, CRLF-terminated, ending with the final ``.``. The content
    already has CRLF line ends (see :mod:`postline.sender.message`)."""
    # Most messages have no line starting with a dot: two substring searches instead of a
    # regular expression tried at every position.
    stuffed = content.startswith(b".") or b"\n." in content
    data = _DOT_AT_LINE_START.sub(b"..", content) if stuffed else content
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class SmtpSession:
    def __init__(
        self,
        endpoint: Endpoint,
        client: aiosmtplib.SMTP,
        timeouts: SmtpTimeouts,
        tls: TlsInfo | None,
    ) -> None:
        """Take over ``client``'s open connection (after EHLO, and STARTTLS if any)."""
        self.endpoint = endpoint
        self.timeouts = timeouts
        self.tls = tls
        self.messages = 0  # transactions started on this session
        self.opened_at = time.monotonic()
        self.last_used = self.opened_at
        self.dropped = False  # the server closed the connection under us
        self._in_transaction = False  # MAIL was sent and the transaction has not ended
        # What the server's last EHLO offered (after STARTTLS: the one over TLS).
        self.pipelining = client.supports_extension("pipelining")
        self._size = client.supports_extension("size")
        self._8bitmime = client.supports_extension("8bitmime")
        assert client.transport is not None, "the session was opened"
        self._client = client
        self._connection = SmtpConnection.take_over(client.transport)
        self._usable = True
        # The address the connection really left from (the OS picks one without a source IP).
        self.local_address = self._connection.local_address() or endpoint.source_ip

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        endpoint: Endpoint,
        *,
        helo_name: str,
        timeouts: SmtpTimeouts,
        tls: TlsContexts,
    ) -> SmtpSession:
        """Connect, read the greeting, EHLO and STARTTLS as the endpoint's mode says.
        Raises :class:`SessionFailed` with the reply that ended it."""
        try:
            return await cls._open(endpoint, helo_name, timeouts, tls, endpoint.tls)
        except _TlsFallback:
            logger.info("%s: opportunistic STARTTLS failed, retrying in plain text", endpoint)
            return await cls._open(endpoint, helo_name, timeouts, tls, NONE)

    @classmethod
    async def _open(
        cls,
        endpoint: Endpoint,
        helo_name: str,
        timeouts: SmtpTimeouts,
        contexts: TlsContexts,
        mode: TlsMode.ValueType,
    ) -> SmtpSession:
        sock = await _connect(endpoint, timeouts.connect)
        client = aiosmtplib.SMTP(
            hostname=endpoint.hostname, local_hostname=helo_name, start_tls=False
        )
        try:
            await _greeting(client, sock, endpoint, timeouts.greeting)
            await _ehlo(client, endpoint, timeouts.ehlo)
            tls = await _starttls(client, endpoint, mode, contexts, timeouts)
            if client.transport is None:  # the server closed it right after EHLO
                raise SessionFailed(
                    Reply.make(replies.DISCONNECTED, replies.EHLO, host=str(endpoint), step="EHLO")
                )
        except BaseException:
            client.close()
            raise
        return cls(endpoint, client, timeouts, tls)

    # -- use -------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Whether another transaction may run on this session."""
        return self._usable and self._connection.connected

    async def send(self, mail_from: str, recipient: str, content: bytes) -> Reply:
        """One mail transaction; the reply that ended it (a 250 to the final dot on success)."""
        self.messages += 1
        self.last_used = time.monotonic()
        try:
            return await self._transaction(mail_from, recipient, content)
        finally:
            self.last_used = time.monotonic()

    async def _transaction(self, mail_from: str, recipient: str, content: bytes) -> Reply:
        t = self.timeouts
        reverse_path, forward_path = _path(mail_from), _path(recipient)
        data = wire_data(content)
        mail = b"MAIL FROM:<" + reverse_path + b">"
        if self._size:
            mail += b" SIZE=%d" % len(data)
        if self._8bitmime and not content.isascii():
            mail += b" BODY=8BITMIME"
        rcpt = b"RCPT TO:<" + forward_path + b">"
        self._in_transaction = True
        if self.pipelining:
            return await self._pipelined(mail, rcpt, data)
        reply = await self._command(replies.MAIL, t.mail, "MAIL", mail)
        if reply.code != 250:
            return reply
        reply = await self._command(replies.RCPT, t.rcpt, "RCPT", rcpt)
        if reply.code not in (250, 251):
            return reply
        reply = await self._command(replies.DATA, t.data_init, "DATA", b"DATA")
        if reply.code != 354:
            return reply
        return await self._data(data)

    async def _pipelined(self, mail: bytes, rcpt: bytes, data: bytes) -> Reply:
        """RFC 2920: MAIL, RCPT and DATA in one write, then their replies in order, each
        within its own timeout. The first reply that is not the expected one answers the
        transaction; the replies after it are still read (the server answers every command
        it got: 503 or 554 to a DATA with no recipient), so the session stays in step and is
        reused after RSET, unless a reply does not come or says the server is closing."""
        t = self.timeouts
        try:
            self._connection.write(mail + b"\r\n" + rcpt + b"\r\nDATA\r\n")
        except Disconnected:
            self.dropped = True
            return self._broken(replies.DISCONNECTED, replies.MAIL, step="MAIL")
        refusal: Reply | None = None
        for stage, timeout, step, expected in (
            (replies.MAIL, t.mail, "MAIL", (250,)),
            (replies.RCPT, t.rcpt, "RCPT", (250, 251)),
            (replies.DATA, t.data_init, "DATA", (354,)),
        ):
            reply = await self._read(stage, timeout, step)
            if not self._usable:  # no reply (timed out, dropped) or a 421
                return refusal or reply
            if reply.code not in expected and refusal is None:
                refusal = reply
        if refusal is None:
            return await self._data(data)
        if reply.code == 354:
            # A server that lets DATA through after refusing MAIL or every RCPT: end the
            # empty message it now expects (its reply, whatever it is, is not the answer).
            try:
                self._connection.write(b".\r\n")
            except Disconnected:
                return self._broken(replies.DISCONNECTED, replies.DATA, step="the final dot")
            await self._read(replies.DATA, t.data_end, "the final dot")
        return refusal

    async def _command(self, stage: str, timeout: float, step: str, line: bytes) -> Reply:
        try:
            self._connection.write(line + b"\r\n")
        except Disconnected:
            self.dropped = True
            return self._broken(replies.DISCONNECTED, stage, step=step)
        return await self._read(stage, timeout, step)

    async def _read(self, stage: str, timeout: float, step: str) -> Reply:
        """The next reply, or the local reply for why none came (the session then broken)."""
        try:
            response = await self._connection.reply(timeout)
        except TimeoutError:
            return self._broken(replies.TIMED_OUT, stage, step=step, seconds=timeout)
        except Disconnected:
            self.dropped = True
            return self._broken(replies.DISCONNECTED, stage, step=step)
        except MalformedReply as exc:
            return self._broken(replies.PROTOCOL_ERROR, stage, step=step, error=str(exc))
        reply = Reply(response.code, response.message, stage)
        if reply.closes_session:
            self._usable = False
            self._close_connection()
        return reply

    async def _data(self, data: bytes) -> Reply:
        connection = self._connection
        t = self.timeouts
        try:
            for start in range(0, len(data), _BLOCK):
                connection.write(data[start : start + _BLOCK])
                if connection.writing_paused:
                    # RFC 5321 §4.5.3.2.5: each block must be taken within the data block
                    # timeout (the transport pauses writing while its buffer is full).
                    await connection.drained(t.data_block)
        except TimeoutError:
            return self._broken(
                replies.TIMED_OUT, replies.DATA, step="a data block", seconds=t.data_block
            )
        except Disconnected:
            return self._broken(replies.DISCONNECTED, replies.DATA, step="the message data")
        reply = await self._read(replies.DATA, t.data_end, "the final dot")
        if not reply.local:
            # RFC 5321 §4.1.1.4: the reply to the final dot ends the transaction, whatever
            # it says.
            self._in_transaction = False
        return reply

    def _broken(self, template: tuple[int, str], stage: str, **values: object) -> Reply:
        self._usable = False
        self._close_connection()
        return Reply.make(template, stage, host=str(self.endpoint), **values)

    def _close_connection(self) -> None:
        self._connection.close()
        self._client.close()

    async def reset(self) -> bool:
        """Make the session ready for the next transaction: RSET when one was left unfinished
        (a rejected MAIL, RCPT or DATA, RFC 5321 §4.1.1.5); after the reply to the final dot
        the server has reset itself, and a round trip per message is worth saving (a session
        that died while idle is noticed at its next MAIL and replaced, see the attempt)."""
        if not self.usable:
            return False
        if not self._in_transaction:
            return True
        reply = await self._command(replies.MAIL, self.timeouts.rset, "RSET", b"RSET")
        self._in_transaction = False
        if reply.code != 250:
            self._usable = False
        return self.usable

    async def close(self) -> None:
        """QUIT (politely, briefly) and close."""
        self._usable = False
        if self._connection.connected:
            try:
                self._connection.write(b"QUIT\r\n")
                await self._connection.reply(self.timeouts.quit)
            except (TimeoutError, Disconnected, MalformedReply):
                pass
        self._close_connection()


def _path(address: str) -> bytes:
    """An address for ``MAIL FROM:<>``/``RCPT TO:<>`` as given (empty: the null path).
    Addresses were validated at ingress (and again by the attempt); this only makes sure
    nothing can smuggle a second command onto the line."""
    if "\r" in address or "\n" in address or not address.isascii():
        raise ValueError(f"address {address!r} cannot go on an SMTP command line")
    return address.encode("ascii")


async def _connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in endpoint.address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        if endpoint.source_ip:
            sock.bind((endpoint.source_ip, 0))
        await within(
            asyncio.get_running_loop().sock_connect(sock, (endpoint.address, endpoint.port)),
            timeout,
        )
    except TimeoutError:
        sock.close()
        raise SessionFailed(
            Reply.make(
                replies.CONNECT_FAILED,
                replies.CONNECT,
                host=str(endpoint),
                error=f"no answer within {timeout:g}s",
            )
        ) from None
    except OSError as exc:
        sock.close()
        source = f" from {endpoint.source_ip}" if endpoint.source_ip else ""
        raise SessionFailed(
            Reply.make(
                replies.CONNECT_FAILED,
                replies.CONNECT,
                host=str(endpoint),
                error=f"{exc.strerror or exc}{source}",
            )
        ) from None
    return sock


async def _greeting(
    client: aiosmtplib.SMTP, sock: socket.socket, endpoint: Endpoint, timeout: float
) -> None:
    try:
        await client.connect(sock=sock, timeout=timeout)
    except aiosmtplib.SMTPConnectResponseError as exc:  # e.g. 554 no service, 421 busy
        raise SessionFailed(Reply(exc.code, exc.message, replies.CONNECT)) from None
    except aiosmtplib.SMTPConnectTimeoutError:
        raise SessionFailed(
            Reply.make(
                replies.TIMED_OUT,
                replies.CONNECT,
                host=str(endpoint),
                seconds=timeout,
                step="the greeting",
            )
        ) from None
    except (aiosmtplib.SMTPException, OSError):
        raise SessionFailed(
            Reply.make(replies.DISCONNECTED, replies.CONNECT, host=str(endpoint), step="greeting")
        ) from None


async def _ehlo(client: aiosmtplib.SMTP, endpoint: Endpoint, timeout: float) -> None:
    try:
        try:
            await client.ehlo(timeout=timeout)
        except aiosmtplib.SMTPHeloError as exc:
            if not (500 <= exc.code < 600 and client.is_connected):
                raise
            await client.helo(timeout=timeout)  # RFC 5321 §3.2: fall back for old servers
    except aiosmtplib.SMTPResponseException as exc:
        raise SessionFailed(Reply(exc.code, exc.message, replies.EHLO)) from None
    except aiosmtplib.SMTPTimeoutError:
        raise SessionFailed(
            Reply.make(
                replies.TIMED_OUT, replies.EHLO, host=str(endpoint), seconds=timeout, step="EHLO"
            )
        ) from None
    except (aiosmtplib.SMTPException, OSError):
        raise SessionFailed(
            Reply.make(replies.DISCONNECTED, replies.EHLO, host=str(endpoint), step="EHLO")
        ) from None


async def _starttls(
    client: aiosmtplib.SMTP,
    endpoint: Endpoint,
    mode: TlsMode.ValueType,
    contexts: TlsContexts,
    timeouts: SmtpTimeouts,
) -> TlsInfo | None:
    if mode == NONE:
        return None
    if not client.supports_extension("starttls"):
        if mode == REQUIRED:
            raise SessionFailed(
                Reply.make(replies.TLS_NOT_OFFERED, replies.STARTTLS, host=str(endpoint))
            )
        return None
    try:
        await client.starttls(
            server_hostname=endpoint.hostname,
            tls_context=contexts.for_mode(mode),
            timeout=timeouts.starttls,
        )
        # RFC 3207 §4.2: forget what the server said before TLS and ask again.
        await client.ehlo(timeout=timeouts.ehlo)
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
        if mode == OPPORTUNISTIC:
            raise _TlsFallback() from exc
        raise SessionFailed(
            Reply.make(
                replies.TLS_FAILED,
                replies.STARTTLS,
                host=str(endpoint),
                error=_tls_error(exc),
            )
        ) from None
    # asyncio's TLS transport names it "ssl_object" (aiosmtplib's docstring says "sslobject").
    sslobject = client.get_transport_info("ssl_object")
    cipher = sslobject.cipher() if sslobject is not None else None
    return TlsInfo(
        version=(sslobject.version() or "") if sslobject is not None else "",
        cipher=cipher[0] if cipher else "",
        verified=mode == REQUIRED,
    )


def _tls_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"STARTTLS answered {exc.code} {exc.message}"
    return str(exc) or type(exc).__name__
