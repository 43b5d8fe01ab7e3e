"""The SMTP relay's protocol: aiosmtpd's, with the parts Postline decides itself.

`RelaySMTP` is one connection: admission at connect (the relay's decision, see
:mod:`postline.ingress.relay`), the design's address rules instead of aiosmtpd's RFC 5322
parser, AUTH checked off the event loop, enhanced status codes on every reply, and DATA read
in large pieces (:mod:`postline.ingress.smtp_data`).

It leans on a few of aiosmtpd's internals (``_original_transport``, the stream reader's limit,
``_auth_require_tls``...): ``tests/unit/test_aiosmtpd_internals.py`` fails loudly when an
upgrade changes them.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import ipaddress
import logging
import ssl
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AnyStr, cast

from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
    _AuthMechAttr,
    syntax,
)

from postline.common.addresses import Address, AddressError, parse_path, split_path
from postline.common.credentials import Principal
from postline.common.dsn import DsnError, parse_envid, parse_notify, parse_orcpt, parse_ret
from postline.common.policy import Policy
from postline.common.policy.fields import IPAddressValue
from postline.ingress import metrics, replies
from postline.ingress.limits import Slot
from postline.ingress.smtp_data import DataReader
from postline.v1 import delivery_pb2

if TYPE_CHECKING:
    from postline.ingress.relay import RelayHandler

logger = logging.getLogger(__name__)


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
# asyncio's readline() when a line exceeds the limit before its end arrived (the rest of the
# line is still to come): its ValueError says so.
LINE_END_NOT_READ = "Separator is not found"
# How much of the DATA stream is read at once while looking for its end.
DATA_READ_LIMIT = 64 * 1024
# A session timer may fire this much before its deadline (the loop's clock resolution)
# and still count as expired.
TIMER_SLACK = 0.01


def _is_utf8(argument: str) -> bool:
    # aiosmtpd decodes arguments as UTF-8 with surrogateescape: a byte that was not UTF-8
    # is a lone surrogate now.
    try:
        argument.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _on_the_wire(status: str) -> bytes:
    # Most replies are the same few constants (250, 354, 221...), each checked, rewritten and
    # encoded once instead of on every push; the unique ones (a 250 naming its message) pass
    # through. UTF-8 as aiosmtpd's push encodes with SMTPUTF8 on (printable left only ASCII).
    return replies.printable(replies.with_enhanced_status(status)).encode() + b"\r\n"


def client_ip(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) else str(peer or "")


class RelayEnvelope(Envelope):
    """aiosmtpd's envelope plus what the relay decided: who sends, parsed addresses."""

    def __init__(self) -> None:
        super().__init__()
        self.principal: Principal | None = None
        self.sender: Address | None = None  # None: the null reverse-path <>
        self.recipients: list[Address] = []
        self.recipient_keys: set[str] = set()
        self.dsn_ret: delivery_pb2.DsnReturn.ValueType = delivery_pb2.DSN_RETURN_UNSPECIFIED
        self.dsn_envid = ""
        # Per recipient, in the order of `recipients`: (NOTIFY flags or None, ORCPT or "").
        self.recipient_dsn: list[tuple[tuple[bool, bool, bool, bool] | None, str]] = []


@dataclass(frozen=True, slots=True)
class Admission:
    """What admission at connect found, under ``policy``: the servers whose ``allowed_ips``
    take the client, and the one that relays for it without AUTH (if any)."""

    policy: Policy
    servers: frozenset[str]
    unauthenticated: str | None


@dataclass(frozen=True)
class MailParameters:
    size: int | None = None
    ret: delivery_pb2.DsnReturn.ValueType = delivery_pb2.DSN_RETURN_UNSPECIFIED
    envid: str = ""


@dataclass(frozen=True)
class RcptParameters:
    notify: tuple[bool, bool, bool, bool] | None = None
    orcpt: str = ""


def _parameters(params: str) -> tuple[dict[str, str], str | None]:
    """``NAME=value`` words by upper-cased name, or the reply for a name given twice."""
    found: dict[str, str] = {}
    for param in params.split():
        name, _, value = param.partition("=")
        name = name.upper()
        if name in found:
            return found, replies.REPEATED_PARAMETER.format(name=name[:20])
        found[name] = value
    return found, None


_LISTED: dict[tuple[type, tuple[str, ...]], list[str]] = {}


def listed_names(cls: type, prefixes: tuple[str, ...]) -> list[str]:
    names = _LISTED.get((cls, prefixes))
    if names is None:
        found = {n for base in cls.__mro__ for n in vars(base) if n.startswith(prefixes)}
        names = _LISTED[(cls, prefixes)] = sorted(found)
    return names


_Pairs = tuple[tuple[str, str], ...]
_TABLES: dict[type, tuple[_Pairs, _Pairs]] = {}


def _own_tables(cls: type) -> tuple[_Pairs, _Pairs]:
    """A protocol class's commands and AUTH mechanisms as aiosmtpd's __init__ finds them:
    ``(command, attribute)`` and ``(mechanism, attribute)`` pairs."""
    tables = _TABLES.get(cls)
    if tables is None:
        commands = tuple((n.replace("smtp_", ""), n) for n in listed_names(cls, ("smtp_",)))
        mechanisms = tuple(
            (
                getattr(getattr(cls, n), "__auth_mechanism_name__", n[5:].replace("__", "-")),
                n,
            )
            for n in listed_names(cls, ("auth_",))
        )
        tables = _TABLES[cls] = (commands, mechanisms)
    return tables


@dataclass(frozen=True)
class _HandlerTables:
    """What aiosmtpd's __init__ finds on a handler, as attribute names: its hooks
    (``handle_X`` as hook X), its AUTH mechanisms (``auth_X``), and the form of its EHLO hook."""

    hooks: _Pairs
    mechanisms: _Pairs
    ehlo_hook_ver: str | None


_HANDLER_TABLES: weakref.WeakKeyDictionary[Any, _HandlerTables] = weakref.WeakKeyDictionary()


def _handler_tables(handler: Any) -> _HandlerTables:
    """A handler's tables by aiosmtpd's rules, found once per handler (one serves every
    connection)."""
    tables = _HANDLER_TABLES.get(handler)
    if tables is None:
        hooks = tuple((n.replace("handle_", ""), n) for n in _public_names(handler, "handle_"))
        mechanisms = tuple(
            (
                getattr(
                    getattr(handler, n),
                    "__auth_mechanism_name__",
                    n.replace("auth_", "").replace("__", "-"),
                ),
                n,
            )
            for n in _public_names(handler, "auth_")
        )
        version = None
        ehlo = dict(hooks).get("EHLO")
        if ehlo is not None:
            count = len(inspect.signature(getattr(handler, ehlo)).parameters)
            version = {4: "old", 5: "new"}.get(count)
            if version is None:
                raise RuntimeError("Unsupported EHLO Hook")
        tables = _HANDLER_TABLES[handler] = _HandlerTables(hooks, mechanisms, version)
    return tables


def _public_names(handler: Any, prefix: str) -> list[str]:
    return [n for n in dir(handler) if n.startswith(prefix)]


class _NothingToScan:
    """Stands in for the handler while aiosmtpd's __init__ scans it (see RelaySMTP)."""

    def __dir__(self) -> list[str]:
        return []


_NOTHING_TO_SCAN = _NothingToScan()


class RelaySMTP(SMTP):
    """One SMTP connection of the relay."""

    # aiosmtpd's __init__ builds its command and AUTH tables from dir() and
    # inspect.getmembers() of the protocol and the handler, on every connection (a tenth of
    # the accept path's time). The protocol's own names are the same for every connection:
    # found once per class (`_own_tables`), and hidden from that scan while it runs; the
    # handler's are found once per handler (`_handler_tables`), and the scan is shown a
    # stand-in with no names instead.
    _scanning_self = True

    def __dir__(self) -> list[str]:
        if not self._scanning_self:
            return []
        return listed_names(type(self), ("smtp_", "auth_"))

    def __init__(
        self,
        relay: RelayHandler,
        *,
        tls_context: ssl.SSLContext | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._scanning_self = False
        super().__init__(
            _NOTHING_TO_SCAN,
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
        del self._scanning_self
        self.event_handler = relay
        commands, mechanisms = _own_tables(type(self))
        self._smtp_methods = {command: getattr(self, name) for command, name in commands}
        handler = _handler_tables(relay)
        self._handle_hooks = {hook: getattr(relay, name) for hook, name in handler.hooks}
        self._ehlo_hook_ver = handler.ehlo_hook_ver
        # The handler's AUTH methods win over the protocol's, as in aiosmtpd, which adds the
        # protocol's first.
        self._auth_methods = {
            **{m: _AuthMechAttr(getattr(self, name), True) for m, name in mechanisms},
            **{m: _AuthMechAttr(getattr(relay, name), False) for m, name in handler.mechanisms},
        }
        self.relay = relay
        self.client_ip = ""
        self.client_address: IPAddressValue = ipaddress.IPv4Address(0)  # parsed once
        self.slot: Slot | None = None
        self.admission: Admission | None = None
        self._refusal: str | None = None
        self._deadline = 0.0  # of the session timeout (`_reset_timeout`)
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
            self.client_ip = client_ip(transport.get_extra_info("peername"))
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

    # -- the session timeout: one timer, not one per command ----------------------------------

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd cancels its timer and starts a new one before every command (six per
        # message). Here each command only moves the deadline; the timer, when it fires before
        # the deadline, is set again for it. A shorter timeout (a refused session's) starts a
        # new timer at once.
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._deadline = deadline
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(deadline, self._timeout_cb)

    def _timeout_cb(self) -> None:
        if self._deadline - self.loop.time() > TIMER_SLACK:
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_cb)
            return
        super()._timeout_cb()

    async def push(self, status: AnyStr) -> None:
        if not isinstance(status, str):
            await super().push(status)
            return
        if status[:1] in ("4", "5"):
            metrics.REJECTED.labels(metrics.SMTP, status[:3]).inc()
        await self._write(_on_the_wire(status))

    async def _write(self, wire: bytes) -> None:
        """Write a reply in its wire form (CRLF included), as aiosmtpd's push does."""
        writer = self._writer
        writer.write(wire)
        # aiosmtpd's push awaits the writer's drain after every reply; it has something to do
        # only when the connection failed or is closing, or the transport's buffer is full
        # (asyncio's flow control: `_paused`, `_connection_lost`). Otherwise it returns at
        # once: two coroutines per reply, seven replies per message, skipped.
        if (
            self._paused  # type: ignore[attr-defined]
            or self._connection_lost  # type: ignore[attr-defined]
            or writer.transport.is_closing()
            or self._reader.exception() is not None
        ):
            await writer.drain()

    async def reply(self, status: str) -> None:
        """Push ``status``; a 421 also closes the channel (RFC 5321 §3.8)."""
        await self.push(status)
        if status.startswith("421"):
            self._close()

    # -- HELO / EHLO: their replies keep the plain form (RFC 2034 §3) --------------------------

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if not hostname:
            await self._write(replies.SYNTAX_HELO.encode() + b"\r\n")
            return
        self._set_rset_state()
        session = self.relay_session()
        session.extended_smtp = False
        session.host_name = hostname
        await self._write(f"250 {self.hostname}\r\n".encode())

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:
            await self._write(replies.SYNTAX_EHLO.encode() + b"\r\n")
            return
        self._set_rset_state()
        session = self.relay_session()
        session.extended_smtp = True
        session.host_name = hostname
        # RFC 2034 (every reply carries an enhanced status) and RFC 2920 (commands are read
        # in order from one stream and answered in turn, so clients may pipeline them).
        # SMTPUTF8 is not offered: the address rules are ASCII only.
        # DSN: RFC 3461 (NOTIFY, ORCPT, RET, ENVID; Postline sends the notices itself).
        keywords = [self.hostname, "PIPELINING", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES"]
        if self.data_size_limit:
            keywords.append(f"SIZE {self.data_size_limit}")  # RFC 1870
        if self.tls_context and not self._tls_protocol:
            keywords.append("STARTTLS")
        if not self._auth_require_tls or self._tls_protocol:
            keywords.append("AUTH " + " ".join(sorted(self._auth_methods)))
        keywords.append("HELP")
        # One write for the whole reply, not one per line.
        lines = [f"250-{k}" for k in keywords[:-1]] + [f"250 {keywords[-1]}"]
        await self._write("\r\n".join(lines).encode() + b"\r\n")

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
            # Malformed or aborted: aiosmtpd has answered already (a 501), and would add a
            # 535 unless told the failure was handled: two replies to one command.
            return AuthResult(success=False, handled=True)
        return await self.relay.authenticate(self, mechanism, decoded.auth_data)

    async def challenge_auth(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().challenge_auth(*args, **kwargs)
        except ValueError as exc:
            # A response line beyond the reader's limit: asyncio drops what it read and
            # raises. The rest of the line, when its end had not come yet, is read and
            # dropped too, then the client hears why and the session goes on.
            if LINE_END_NOT_READ in str(exc):
                await self._skip_line()
            await self.push(replies.LINE_TOO_LONG)
            return MISSING

    async def _skip_line(self) -> None:
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self._reader.readexactly(exc.consumed)
            except asyncio.IncompleteReadError:
                return

    # -- VRFY: never verified (RFC 5321 §3.5.3), but the argument is checked -----------------

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str | None) -> None:
        if not arg:
            await self.reply(replies.SYNTAX_VRFY)
            return
        if not _is_utf8(arg):
            await self.reply(replies.NOT_UTF8)
            return
        try:
            path, _ = split_path(arg)
            parse_path(path)
        except AddressError as exc:
            await self.reply(replies.BAD_ADDRESS.format(reason=exc.reason))
            return
        await self.reply(replies.CANNOT_VRFY)

    # -- MAIL / RCPT with the design's address rules -----------------------------------------

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
        parameters, problem = self._mail_parameters(params)
        if parameters is None:
            await self.reply(problem or replies.SYNTAX_MAIL)
            return
        await self.reply(await self.relay.mail(self, envelope, sender, parameters))

    def _mail_parameters(self, params: str) -> tuple[MailParameters | None, str | None]:
        """SIZE (RFC 1870), BODY (RFC 6152), RET and ENVID (RFC 3461); anything else is
        refused with 555."""
        if params and not self.relay_session().extended_smtp:
            return None, replies.PARAMETERS_WITHOUT_EHLO
        found, problem = _parameters(params)
        if problem is not None:
            return None, problem
        size = None
        ret = delivery_pb2.DSN_RETURN_UNSPECIFIED
        envid = ""
        for name, value in found.items():
            try:
                if name == "SIZE":
                    if not value.isdigit():
                        return None, replies.BAD_PARAMETER.format(name=name)
                    size = int(value)
                elif name == "BODY":
                    if value.upper() not in BODY_TYPES:
                        return None, replies.BAD_PARAMETER.format(name=name)
                elif name == "RET":
                    ret = parse_ret(value)
                elif name == "ENVID":
                    envid = parse_envid(value)
                else:
                    return None, replies.UNKNOWN_PARAMETER.format(name=name[:20])
            except DsnError as exc:
                return None, replies.BAD_DSN_PARAMETER.format(name=exc.name, reason=exc.reason)
        return MailParameters(size, ret, envid), None

    def _rcpt_parameters(self, params: str) -> tuple[RcptParameters | None, str | None]:
        """NOTIFY and ORCPT (RFC 3461 §4.1, §4.2); anything else is refused with 555."""
        if params and not self.relay_session().extended_smtp:
            return None, replies.PARAMETERS_WITHOUT_EHLO
        found, problem = _parameters(params)
        if problem is not None:
            return None, problem
        notify = None
        orcpt = ""
        for name, value in found.items():
            try:
                if name == "NOTIFY":
                    notify = parse_notify(value.split(","))
                elif name == "ORCPT":
                    orcpt = parse_orcpt(value)
                else:
                    return None, replies.UNKNOWN_PARAMETER.format(name=name[:20])
            except DsnError as exc:
                return None, replies.BAD_DSN_PARAMETER.format(name=exc.name, reason=exc.reason)
        return RcptParameters(notify, orcpt), None

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
        parameters, problem = self._rcpt_parameters(params)
        if parameters is None:
            await self.reply(problem or replies.SYNTAX_RCPT)
            return
        assert recipient is not None  # parse_path gives None only with allow_null
        await self.reply(self.relay.rcpt(envelope, recipient, parameters))

    # -- DATA, read in large pieces ---------------------------------------------------------

    @syntax("DATA")
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
        data = await self._receive_data()
        if data is None:  # the client left mid-DATA: nothing to publish
            self._close()
            return
        status = data.refusal()
        if status is None:
            envelope.content = envelope.original_content = data.content
            status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.reply(status)

    async def _receive_data(self) -> DataReader | None:
        """The data up to its closing ``CRLF . CRLF``, or None at the end of the stream.

        aiosmtpd reads DATA line by line, some 80 reads for a 5 KB message; this reads up to
        each ``.CRLF`` instead and lets `DataReader` find the end and check the lines.
        """
        stream = self._reader
        data = DataReader(self.data_size_limit or 0)
        # readuntil looks for the separator within the reader's limit: one command line for
        # aiosmtpd's commands, a larger piece for the data (restored afterwards).
        saved_limit = stream._limit  # type: ignore[attr-defined]
        stream._limit = DATA_READ_LIMIT  # type: ignore[attr-defined]
        try:
            while True:
                try:
                    piece = await stream.readuntil(b".\r\n")
                except asyncio.LimitOverrunError as exc:
                    piece = await stream.readexactly(exc.consumed)
                except asyncio.IncompleteReadError:
                    return None
                if data.feed(piece):
                    return data
        finally:
            stream._limit = saved_limit  # type: ignore[attr-defined]
