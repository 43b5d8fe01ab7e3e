"""The SMTP relay (aiosmtpd): guard clauses answering in SMTP, then one confirmed publish.

Every check answers with a reply code and an enhanced status; an unexpected error becomes a
temporary ``451 4.3.0``, never a traceback to the client nor a half-accepted message.

`RelaySMTP` is aiosmtpd's protocol with the parts Postline decides itself: admission at connect
(see :mod:`postline.ingress.limits` for whose limits apply before AUTH), the design's address
rules instead of aiosmtpd's RFC 5322 parser, AUTH checked off the event loop, and enhanced
status codes on every reply. `RelayHandler` holds the policy's decisions and the publish.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import math
import os
import ssl
import time
from typing import Any, AnyStr, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from postline.common.addresses import Address, AddressError, parse_path, split_path
from postline.common.broker import Broker
from postline.common.broker.connection import BrokerUnavailable
from postline.common.credentials import Credentials, Principal
from postline.common.policy import Policy
from postline.common.policy.fields import IPAddressValue
from postline.common.semconv import MESSAGE_ID, SERVER, SPAN_SMTP_TRANSACTION
from postline.common.telemetry import tracer
from postline.common.throttle import AuthThrottle, account_key, ip_key
from postline.ingress import replies
from postline.ingress.limits import ConnectionGate, RateLimiter, Slot
from postline.ingress.submission import (
    Accepted,
    Submission,
    publish_deliveries,
    publish_queued,
)

logger = logging.getLogger(__name__)
_tracer = tracer(__name__)

# RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
SESSION_TIMEOUT = 300.0
# A client refused with a 554 greeting may only QUIT (RFC 5321 §3.1); it gets little time.
REFUSED_SESSION_TIMEOUT = 30.0
REFUSED_SESSION_COMMANDS = 10
# Refused clients hold no connection slot; beyond this many at once they are just closed.
REFUSED_SESSIONS_MAX = 50
# The design's addresses may fill an SMTP line (1000 octets with CRLF, RFC 5321 §4.5.3.1.6),
# beyond the 512-octet command line of §4.5.3.1.4, so MAIL and RCPT get the whole line.
PATH_COMMAND_LIMIT = 998
# BODY values of RFC 6152 (8BITMIME); the content is passed on as bytes either way.
BODY_TYPES = frozenset({"7BIT", "8BITMIME"})
# RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF.
MAX_LINE = 998
# How much of the DATA stream is read at once while looking for its end.
DATA_READ_LIMIT = 64 * 1024


def _client_ip(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) else str(peer or "")


def _longest_line(data: bytes) -> int:
    return max(map(len, data.split(b"\r\n")), default=0)


def _unstuffed(data: bytes) -> bytes:
    # RFC 5321 §4.5.2: a line starting with "." had one more added by the client.
    return (b"\r\n" + data).replace(b"\r\n.", b"\r\n")[2:]


def _is_loopback(address: IPAddressValue) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class _DeprecatedLoginData(logging.Filter):
    # aiosmtpd 1.4 sets the deprecated Session.login_data on every AUTH and warns about it.
    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in str(record.msg)


class RelayEnvelope(Envelope):
    """aiosmtpd's envelope plus what the relay decided: who sends, parsed addresses."""

    def __init__(self) -> None:
        super().__init__()
        self.principal: Principal | None = None
        self.sender: Address | None = None  # None: the null reverse-path <>
        self.recipients: list[Address] = []
        self.recipient_keys: set[str] = set()


_LISTED: dict[tuple[type, tuple[str, ...]], list[str]] = {}


def _listed_names(cls: type, prefixes: tuple[str, ...]) -> list[str]:
    names = _LISTED.get((cls, prefixes))
    if names is None:
        found = {n for base in cls.__mro__ for n in vars(base) if n.startswith(prefixes)}
        names = _LISTED[(cls, prefixes)] = sorted(found)
    return names


class RelaySMTP(SMTP):
    """One SMTP connection of the relay."""

    def __dir__(self) -> list[str]:
        # aiosmtpd's __init__ builds its command and AUTH tables from dir() and
        # inspect.getmembers() of the protocol and the handler, on every connection (a tenth
        # of the accept path's time); listing only the names it looks for keeps that cheap.
        return _listed_names(type(self), ("smtp_", "auth_"))

    def __init__(
        self,
        relay: RelayHandler,
        *,
        tls_context: ssl.SSLContext | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(
            relay,
            loop=loop,
            hostname=relay.hostname,
            ident="Postline ESMTP",
            tls_context=tls_context,
            require_starttls=False,
            timeout=relay.session_timeout,
            auth_required=False,
            # Set per connection in `connection_made`: plain-text AUTH is allowed on loopback
            # only, when the policy says so.
            auth_require_tls=True,
            data_size_limit=relay.max_message_size,
            # Arguments are decoded as UTF-8 so that a non-ASCII address gets the address
            # rules' 553 reason; SMTPUTF8 itself is not announced (RFC 6531 addresses are not
            # supported) and the MAIL parameter is refused.
            enable_SMTPUTF8=True,
            decode_data=False,
        )
        self.relay = relay
        self.client_ip = ""
        self.client_address: IPAddressValue = ipaddress.IPv4Address(0)  # parsed once
        self.slot: Slot | None = None
        self._refusal: str | None = None
        self.command_size_limits = collections.defaultdict(
            lambda: self.command_size_limit,
            {"MAIL": PATH_COMMAND_LIMIT, "RCPT": PATH_COMMAND_LIMIT},
        )

    # Methods, not properties: aiosmtpd's __init__ reads every attribute (inspect.getmembers).
    def relay_envelope(self) -> RelayEnvelope:
        return cast(RelayEnvelope, self.envelope)

    def relay_session(self) -> Session:
        assert self.session is not None
        return self.session

    def _create_envelope(self) -> RelayEnvelope:
        return RelayEnvelope()

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again after STARTTLS with the TLS transport; admission happens once.
        if self._original_transport is None:
            self.client_ip = _client_ip(transport.get_extra_info("peername"))
            self.client_address = ipaddress.ip_address(self.client_ip)
            self._refusal = self.relay.open_connection(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.slot is not None:
            self.relay.gate.close(self.slot)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refusal is None:
            await super()._handle_client()
            return
        await self.push(self._refusal)
        if self._refusal.startswith("421") or self.relay.refused_sessions >= REFUSED_SESSIONS_MAX:
            self._close()
            return
        # RFC 5321 §3.1: after a 554 greeting, wait for QUIT and answer 503 to anything else.
        self._reset_timeout(REFUSED_SESSION_TIMEOUT)
        self.relay.refused_sessions += 1
        try:
            for _ in range(REFUSED_SESSION_COMMANDS):
                line = await self._reader.readline()
                if not line:
                    break
                if line.strip().upper() == b"QUIT":
                    await self.push(replies.BYE)
                    break
                await self.push(replies.REFUSED_SESSION)
        except (ValueError, ConnectionError):
            pass  # a line beyond the limit, or the client went away
        finally:
            self.relay.refused_sessions -= 1
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            await super().push(replies.with_enhanced_status(status))
        else:
            await super().push(status)

    async def reply(self, status: str) -> None:
        """Push ``status``; a 421 also closes the channel (RFC 5321 §3.8)."""
        await self.push(status)
        if status.startswith("421"):
            self._close()

    # -- HELO / EHLO: their replies keep the plain form (RFC 2034 §3) --------------------------

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if not hostname:
            await super().push(replies.SYNTAX_HELO)
            return
        self._set_rset_state()
        session = self.relay_session()
        session.extended_smtp = False
        session.host_name = hostname
        await super().push(f"250 {self.hostname}")

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:
            await super().push(replies.SYNTAX_EHLO)
            return
        self._set_rset_state()
        session = self.relay_session()
        session.extended_smtp = True
        session.host_name = hostname
        # RFC 2034 (every reply carries an enhanced status) and RFC 2920 (commands are read
        # in order from one stream and answered in turn, so clients may pipeline them).
        # SMTPUTF8 is not offered: the address rules are ASCII only.
        keywords = [self.hostname, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.data_size_limit:
            keywords.append(f"SIZE {self.data_size_limit}")  # RFC 1870
        if self.tls_context and not self._tls_protocol:
            keywords.append("STARTTLS")
        if not self._auth_require_tls or self._tls_protocol:
            keywords.append("AUTH " + " ".join(sorted(self._auth_methods)))
        keywords.append("HELP")
        # One write for the whole reply, not one per line.
        lines = [f"250-{k}" for k in keywords[:-1]] + [f"250 {keywords[-1]}"]
        await super().push("\r\n".join(lines))

    # -- AUTH ----------------------------------------------------------------------------

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # aiosmtpd's PLAIN and LOGIN call this synchronously once they decoded the
        # credentials. Checking them costs an argon2 hash (tens of ms), which must not block
        # the loop: hand the credentials back, `auth_PLAIN`/`auth_LOGIN` check them off it.
        return AuthResult(success=False, handled=False, auth_data=auth_data)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._check("PLAIN", await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._check("LOGIN", await super().auth_LOGIN(_, args))

    async def _check(self, mechanism: str, decoded: AuthResult) -> AuthResult:
        if not isinstance(decoded.auth_data, LoginPassword):
            return decoded  # malformed or aborted: aiosmtpd has answered already
        return await self.relay.authenticate(self, mechanism, decoded.auth_data)

    # -- MAIL / RCPT with the design's address rules -----------------------------------------

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # Only VRFY still uses aiosmtpd's path parsing; give it the design's rules too.
        try:
            path, params = split_path(arg)
            address = parse_path(path)
        except AddressError:
            return None, None
        return (address.smtp_form() if address else ""), params

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        envelope = self.relay_envelope()
        argument = self._strip_command_keyword("FROM:", arg) if arg else None
        if argument is None:
            await self.reply(replies.SYNTAX_MAIL)
            return
        if envelope.mail_from:
            await self.reply(replies.NESTED_MAIL)
            return
        try:
            path, params = split_path(argument)
            sender = parse_path(path, allow_null=True)
        except AddressError as exc:
            await self.reply(replies.BAD_ADDRESS.format(reason=exc.reason))
            return
        size, problem = self._mail_parameters(params)
        if problem is not None:
            await self.reply(problem)
            return
        await self.reply(await self.relay.mail(self, envelope, sender, size))

    def _mail_parameters(self, params: str) -> tuple[int | None, str | None]:
        """SIZE (RFC 1870) and BODY (RFC 6152); anything else is refused with 555."""
        if params and not self.relay_session().extended_smtp:
            return None, replies.PARAMETERS_WITHOUT_EHLO
        size = None
        for param in params.split():
            name, _, value = param.partition("=")
            name = name.upper()
            if name == "SIZE":
                if not value.isdigit():
                    return None, replies.BAD_PARAMETER.format(name=name)
                size = int(value)
            elif name == "BODY":
                if value.upper() not in BODY_TYPES:
                    return None, replies.BAD_PARAMETER.format(name=name)
            else:
                return None, replies.UNKNOWN_PARAMETER.format(name=name[:20])
        return size, None

    @syntax("RCPT TO: <address>")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        envelope = self.relay_envelope()
        if not envelope.mail_from:
            await self.reply(replies.NEED_MAIL)
            return
        argument = self._strip_command_keyword("TO:", arg) if arg else None
        if argument is None:
            await self.reply(replies.SYNTAX_RCPT)
            return
        try:
            path, params = split_path(argument)
            recipient = parse_path(path)
        except AddressError as exc:
            await self.reply(replies.BAD_ADDRESS.format(reason=exc.reason))
            return
        if params:
            # No RCPT parameter is announced (DSN's NOTIFY/ORCPT are not supported).
            name = params.split()[0].partition("=")[0].upper()[:20]
            await self.reply(replies.UNKNOWN_PARAMETER.format(name=name))
            return
        assert recipient is not None  # parse_path gives None only with allow_null
        await self.reply(self.relay.rcpt(envelope, recipient))

    # -- DATA, read in large pieces ---------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        envelope = self.relay_envelope()
        if not envelope.rcpt_tos:
            await self.reply(replies.NEED_RCPT)
            return
        if arg:
            await self.reply(replies.SYNTAX_DATA)
            return
        await self.push(replies.START_DATA)
        received = await self._receive_data()
        if received is None:  # the client left mid-DATA: nothing to publish
            self._close()
            return
        data, status = received
        if status is None and _longest_line(data) > MAX_LINE:
            status = replies.LINE_TOO_LONG
        if status is None:
            envelope.content = envelope.original_content = _unstuffed(data)
            status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.reply(status)

    async def _receive_data(self) -> tuple[bytes, str | None] | None:
        """The data up to its closing ``CRLF . CRLF`` and a refusal, or None at end of stream.

        aiosmtpd reads DATA line by line, some 80 reads for a 5 KB message; this reads up to
        each ``.CRLF`` instead, and checks line lengths afterwards. Past ``data_size_limit``
        the rest is read and dropped: RFC 5321 §4.2.5 puts the reply after the data.
        """
        reader = self._reader
        limit = self.data_size_limit or 0
        chunks: list[bytes] = []
        size = 0
        too_big = False
        # The two bytes before each piece; the DATA line's CRLF comes first, so an empty
        # message (".CRLF" right away) ends like any other.
        tail = b"\r\n"
        # readuntil looks for the separator within the reader's limit: one command line for
        # aiosmtpd's commands, a larger piece for the data (restored afterwards).
        saved_limit = reader._limit  # type: ignore[attr-defined]
        reader._limit = DATA_READ_LIMIT  # type: ignore[attr-defined]
        try:
            while True:
                try:
                    chunk = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError as exc:
                    chunk = await reader.readexactly(exc.consumed)
                except asyncio.IncompleteReadError:
                    return None
                ended = chunk.endswith(b".\r\n") and (tail + chunk[-5:])[-5:-3] == b"\r\n"
                tail = (tail + chunk[-2:])[-2:]
                if ended:
                    chunk = chunk[:-3]
                size += len(chunk)
                if limit and size > limit:
                    too_big = True
                    chunks.clear()  # keep counting, stop keeping
                elif not too_big:
                    chunks.append(chunk)
                if ended:
                    break
        finally:
            reader._limit = saved_limit  # type: ignore[attr-defined]
        if too_big:
            return b"", replies.MESSAGE_TOO_BIG
        return b"".join(chunks), None


class RelayHandler:
    """aiosmtpd handler and the relay's decisions; one instance serves every connection."""

    def __dir__(self) -> list[str]:
        return _listed_names(type(self), ("handle_", "auth_"))  # see RelaySMTP.__dir__

    def __init__(
        self,
        broker: Broker,
        policy: Policy,
        hostname: str,
        *,
        session_timeout: float = SESSION_TIMEOUT,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.broker = broker
        self.policy = policy
        self.hostname = hostname
        self.session_timeout = session_timeout
        self.credentials = Credentials(policy)
        # Failed AUTH per account and per client address (shared with the send API).
        self.throttle = throttle if throttle is not None else AuthThrottle()
        self.gate = ConnectionGate(policy)
        self.rates = RateLimiter()
        self.refused_sessions = 0  # clients answered 554 and waiting to QUIT
        # argon2 needs a core and 64 MiB per check: bound how many run at once.
        self._checks = asyncio.Semaphore(os.cpu_count() or 1)
        self._in_flight: set[asyncio.Task[Any]] = set()

    @property
    def max_message_size(self) -> int:
        return max(s.relay.max_message_size for s in self.policy.servers.values())

    async def drain(self) -> None:
        """Wait for the publishes of messages whose data was received (at shutdown)."""
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here too, in case the client had left

    # -- connect -------------------------------------------------------------------------

    def open_connection(self, conn: RelaySMTP) -> str | None:
        """Admit a new connection (see :mod:`postline.ingress.limits`); the refusal, or None."""
        ip, address = conn.client_ip, conn.client_address
        servers = self.gate.accepting_servers(address)
        if not servers:
            logger.info("%s refused: not in any server's allowed_ips", ip)
            return replies.CLIENT_NOT_ALLOWED.format(hostname=self.hostname, ip=ip)
        slot = self.gate.open(ip, servers)
        if slot is None:
            logger.warning("%s refused: too many connections", ip)
            return replies.TOO_MANY_CONNECTIONS.format(hostname=self.hostname)
        unauthenticated = self.policy.unauthenticated_server(address)
        if unauthenticated in servers and not self.gate.assign(slot, unauthenticated):
            self.gate.close(slot)
            logger.warning("%s refused: too many connections for %s", ip, unauthenticated)
            return replies.TOO_MANY_CONNECTIONS.format(hostname=self.hostname)
        conn.slot = slot
        relays = [self.policy.servers[name].relay for name in servers]
        if slot.server is not None:
            relays = [self.policy.servers[slot.server].relay]
        # EHLO announces SIZE (RFC 1870): the limit of the server the client may belong to.
        conn.data_size_limit = max(r.max_message_size for r in relays)
        # RFC 4954 §4: AUTH needs TLS, except on loopback when a server allows it (the
        # authenticated user's own server is checked again in `authenticate`).
        conn._auth_require_tls = not (
            _is_loopback(address) and any(r.plain_auth_on_loopback for r in relays)
        )
        return None

    # -- AUTH ----------------------------------------------------------------------------

    async def authenticate(
        self, conn: RelaySMTP, mechanism: str, credentials: LoginPassword
    ) -> AuthResult:
        ip = conn.client_ip
        login = credentials.login.decode("utf-8", "replace")
        secret = credentials.password.decode("utf-8", "replace")
        found = self.policy.find_api_user(login)
        if (
            found is not None
            and conn.relay_session().ssl is None
            and not self.policy.servers[found[0]].relay.plain_auth_on_loopback
        ):
            return AuthResult(success=False, handled=False, message=replies.ENCRYPTION_REQUIRED)
        keys = (account_key(login), ip_key(ip))
        wait = self.throttle.retry_after(*keys)
        if wait > 0:
            seconds = math.ceil(wait)
            logger.warning(
                "%s AUTH %s as %r refused: throttled for %ss", ip, mechanism, login, seconds
            )
            refusal = replies.AUTH_THROTTLED.format(seconds=seconds)
            return AuthResult(success=False, handled=False, message=refusal)
        try:
            async with self._checks:
                principal = await asyncio.to_thread(self.credentials.check, login, secret, ip)
        except Exception:
            logger.exception("%s AUTH %s could not be checked", ip, mechanism)
            return AuthResult(success=False, handled=False, message=replies.AUTH_UNAVAILABLE)
        if principal is None:
            logger.info("%s AUTH %s failed for %r", ip, mechanism, login)
            self.throttle.failed(*keys)
            return AuthResult(success=False, handled=False, message=replies.AUTH_INVALID)
        self.throttle.succeeded(keys[0])
        relay = self.policy.servers[principal.server].relay
        if not relay.accepts_connection_from(conn.client_address):
            logger.info("%s AUTH as %s refused: not in allowed_ips", ip, principal.api_user)
            refusal = replies.CLIENT_NOT_ALLOWED.format(hostname=self.hostname, ip=ip)
            return AuthResult(success=False, handled=False, message=refusal)
        assert conn.slot is not None
        if not self.gate.assign(conn.slot, principal.server):
            logger.warning("%s AUTH: too many connections for %s", ip, principal.server)
            await conn.reply(replies.TOO_MANY_CONNECTIONS.format(hostname=self.hostname))
            return AuthResult(success=False, handled=True)
        conn.data_size_limit = relay.max_message_size
        return AuthResult(success=True, auth_data=principal)

    def _principal(self, conn: RelaySMTP) -> Principal | None:
        session = conn.relay_session()
        if session.authenticated and isinstance(session.auth_data, Principal):
            return session.auth_data
        server = self.policy.unauthenticated_server(conn.client_address)
        return Principal(server, "") if server is not None else None

    # -- the transaction ------------------------------------------------------------------

    async def mail(
        self, conn: RelaySMTP, envelope: RelayEnvelope, sender: Address | None, size: int | None
    ) -> str:
        ip = conn.client_ip
        principal = self._principal(conn)
        if principal is None:
            return replies.AUTH_REQUIRED
        relay = self.policy.servers[principal.server].relay
        if not relay.accepts_connection_from(conn.client_address):
            return replies.CLIENT_NOT_ALLOWED.format(hostname=self.hostname, ip=ip)
        assert conn.slot is not None
        if not self.gate.assign(conn.slot, principal.server):
            return replies.TOO_MANY_CONNECTIONS.format(hostname=self.hostname)
        # RFC 1870 §6.1: a declared size beyond the limit is refused before any data.
        if size is not None and size > relay.max_message_size:
            return replies.MESSAGE_TOO_BIG
        if not self.rates.allow(principal.server, ip, relay.rate_per_ip):
            logger.info("%s over rate_per_ip %s of %s", ip, relay.rate_per_ip, principal.server)
            return replies.RATE_EXCEEDED.format(ip=ip)
        envelope.principal = principal
        envelope.sender = sender
        envelope.mail_from = sender.smtp_form() if sender is not None else "<>"
        return replies.MAIL_OK

    def rcpt(self, envelope: RelayEnvelope, recipient: Address) -> str:
        assert envelope.principal is not None  # MAIL succeeded
        if recipient.key in envelope.recipient_keys:
            return replies.RCPT_OK  # the same mailbox twice is one delivery
        relay = self.policy.servers[envelope.principal.server].relay
        if len(envelope.recipients) >= relay.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        envelope.recipients.append(recipient)
        envelope.recipient_keys.add(recipient.key)
        envelope.rcpt_tos.append(recipient.smtp_form())
        return replies.RCPT_OK

    # -- aiosmtpd hooks -------------------------------------------------------------------

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        relay_envelope = cast(RelayEnvelope, envelope)
        principal = relay_envelope.principal
        if principal is None or not relay_envelope.recipients:
            return replies.NO_RECIPIENTS
        content = envelope.original_content or b""
        if len(content) > self.policy.servers[principal.server].relay.max_message_size:
            return replies.MESSAGE_TOO_BIG
        ip = _client_ip(session.peer)
        submission = Submission(
            server=principal.server,
            api_user=principal.api_user,
            envelope_from=relay_envelope.sender,
            recipients=list(relay_envelope.recipients),
            content=content,
            client_ip=ip,
            accepted_at=time.time(),
        )
        # The whole message is here: publish it even if the client leaves meanwhile, so that
        # either every delivery is confirmed or none was attempted (the client, seeing no
        # reply, sends it again: a duplicate, never a part of a message).
        task = asyncio.ensure_future(self._publish(submission))
        self._track(task)
        try:
            accepted = await asyncio.shield(task)
        except BrokerUnavailable as exc:
            logger.warning("%s not accepted: %s", ip, exc)
            return replies.BROKER_UNAVAILABLE
        except asyncio.CancelledError:
            logger.info("%s left before the reply to DATA; publishing goes on", ip)
            raise
        except Exception:
            logger.exception("%s unexpected error in DATA", ip)
            return replies.LOCAL_ERROR
        logger.info(
            "%s accepted from %s for %d recipients",
            accepted.message_id,
            ip,
            len(accepted.deliveries),
        )
        return replies.QUEUED.format(message_id=accepted.message_id)

    async def _publish(self, submission: Submission) -> Accepted:
        with _tracer.start_as_current_span(SPAN_SMTP_TRANSACTION) as span:
            span.set_attribute(SERVER, submission.server)
            accepted = await publish_deliveries(self.broker, submission, self.hostname)
            span.set_attribute(MESSAGE_ID, accepted.message_id)
            # The reply waits for the deliveries only (the design's condition for 250): the
            # queued events are best effort (see `publish_queued`) and follow in the background.
            self._track(asyncio.ensure_future(publish_queued(self.broker, accepted)))
            return accepted

    async def handle_exception(self, error: Exception) -> str:
        logger.error("unexpected error in an SMTP command", exc_info=error)
        return replies.LOCAL_ERROR


async def start_smtp(
    handler: RelayHandler,
    host: str,
    port: int,
    *,
    tls_context: ssl.SSLContext | None,
) -> asyncio.Server:
    """Listen for SMTP on ``host:port``; STARTTLS is offered when ``tls_context`` is given."""
    # aiosmtpd logs every command at INFO on "mail.log"; Postline logs its own decisions.
    mail_log = logging.getLogger("mail.log")
    mail_log.setLevel(logging.WARNING)
    if not any(isinstance(f, _DeprecatedLoginData) for f in mail_log.filters):
        mail_log.addFilter(_DeprecatedLoginData())

    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return RelaySMTP(handler, tls_context=tls_context, loop=loop)

    return await loop.create_server(factory, host=host, port=port)
