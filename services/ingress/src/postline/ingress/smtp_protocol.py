"""The SMTP relay's protocol (RFC 5321): one connection, parsed as its bytes arrive.

`RelaySMTP` is an `asyncio.Protocol`: `data_received` splits what came into lines and answers
each command in turn (RFC 2920: a pipelined batch is answered in order), and reads DATA in
whatever pieces arrive (:mod:`postline.ingress.smtp_data` finds its end, checks and unstuffs
it). Most commands are answered at once; the few that wait for something — the publish of a
message's deliveries after DATA, an AUTH check (argon2, off the loop), the TLS handshake of
STARTTLS — run as a task, and the lines behind them wait in the buffer until it is done.

The decisions (admission, AUTH, limits, the publish) are :mod:`postline.ingress.relay`'s. The
replies are aiosmtpd's, whose protocol the relay was built on until round 7 of issue #13 (see
bench/README.md): its stream reader, task and writer per connection and coroutine per command
cost more than the rest of the relay's work. Every reply has its enhanced status
(:mod:`postline.ingress.replies`) and only printable US-ASCII.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import ipaddress
import logging
import ssl
from base64 import b64decode, b64encode
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

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
# RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF (aiosmtpd's limit,
# without it).
COMMAND_LIMIT = 512
# The design's addresses may fill an SMTP line (1000 octets with CRLF, RFC 5321 §4.5.3.1.6),
# beyond the 512-octet command line of §4.5.3.1.4, so MAIL and RCPT get the whole line (after
# EHLO, as aiosmtpd gave it).
PATH_COMMAND_LIMIT = 998
# How far into the buffer a line's end is looked for; a line longer than this is read to its
# end and dropped, then refused (aiosmtpd's stream limit).
LINE_LENGTH_LIMIT = 1001
# aiosmtpd closed a session after this many unknown commands.
BOGUS_LIMIT = 5
# RFC 4954 AUTH mechanisms, with aiosmtpd's LOGIN prompts.
MECHANISMS = ("LOGIN", "PLAIN")
LOGIN_USER_PROMPT = b"User Name\x00"
LOGIN_PASSWORD_PROMPT = b"Password\x00"
# What a client may send ahead while a command waits (a pipelined batch is far smaller): beyond
# it the connection is not read until the command is done, as a stream reader's limit did.
PIPELINE_LIMIT = 64 * 1024
# A session timer may fire this much before its deadline (the loop's clock resolution)
# and still count as expired.
TIMER_SLACK = 0.01

# aiosmtpd's replies, kept word for word (the enhanced status is added on the way out).
GREETING = "220 {hostname} Postline ESMTP"
OK = "250 OK"
BYE = "221 Bye"
BAD_SYNTAX = "500 Error: bad syntax"
COMMAND_TOO_LONG = "500 Command line too long"
UNKNOWN_COMMAND = '500 Error: command "{command}" not recognized'
TOO_MANY_UNKNOWN = "502 5.5.1 Too many unrecognized commands, goodbye."
SEND_HELO_FIRST = "503 Error: send {helo} first"
SYNTAX_NO_ARGUMENT = "501 Syntax: {command}"
EXPN_NOT_IMPLEMENTED = "502 EXPN not implemented"
TLS_NOT_AVAILABLE = "454 TLS not available"
TLS_READY = "220 Ready to start TLS"
TLS_ACTIVE = "503 5.5.1 Error: TLS already active"
AUTH_NOT_RECOGNIZED = "500 Error: command 'AUTH' not recognized"
AUTH_ALREADY = "503 Already authenticated"
AUTH_NO_VALUE = "501 Not enough value"
AUTH_TOO_MANY_VALUES = "501 Too many values"
AUTH_UNKNOWN_MECHANISM = "504 5.5.4 Unrecognized authentication type"
AUTH_ABORTED = "501 5.7.0 Auth aborted"
AUTH_BAD_BASE64 = "501 5.5.2 Can't decode base64"
AUTH_CANNOT_SPLIT = "501 5.5.2 Can't split auth value"
AUTH_OK = "235 2.7.0 Authentication successful"

# HELP's syntax lines (aiosmtpd's @syntax texts; MAIL's extension after EHLO).
SYNTAX = {
    "AUTH": "AUTH <mechanism>",
    "DATA": "DATA",
    "EHLO": "EHLO hostname",
    "HELO": "HELO hostname",
    "HELP": "HELP [command]",
    "MAIL": "MAIL FROM: <address>",
    "NOOP": "NOOP [ignored]",
    "QUIT": "QUIT",
    "RCPT": "RCPT TO: <address>",
    "RSET": "RSET",
    "STARTTLS": "STARTTLS",
    "VRFY": "VRFY <address>",
}
EXTENDED_SYNTAX = {"MAIL": " [SP <mail-parameters>]"}
# BODY values of RFC 6152 (8BITMIME); the content is passed on as bytes either way.
BODY_TYPES = frozenset({"7BIT", "8BITMIME"})
# What `_next_line` gives for a line beyond LINE_LENGTH_LIMIT (a real line has its LF).
_TOO_LONG = b""


def _is_utf8(argument: str) -> bool:
    # Arguments are decoded as UTF-8 with surrogateescape: a byte that was not UTF-8 is a
    # lone surrogate now.
    try:
        argument.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _on_the_wire(status: str) -> bytes:
    # Most replies are the same few constants (250, 354, 221...), each checked, rewritten and
    # encoded once; the unique ones (a 250 naming its message) pass through.
    return replies.printable(replies.with_enhanced_status(status)).encode() + b"\r\n"


def client_ip(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) else str(peer or "")


class LoginPassword(NamedTuple):
    login: bytes
    password: bytes


@dataclass(frozen=True)
class AuthResult:
    """What an AUTH check found: ``message`` replaces the usual reply; ``handled``: the
    client was answered already."""

    success: bool
    handled: bool = False
    message: str | None = None
    auth_data: Any = None


@dataclass
class Session:
    """What a connection knows of its client; made anew after STARTTLS (RFC 3207 §4.2)."""

    peer: Any
    host_name: str | None = None
    extended_smtp: bool = False
    ssl: dict[str, Any] | None = None  # the TLS connection's details, once STARTTLS is done
    authenticated: bool = False
    auth_data: Principal | None = None


@dataclass(eq=False)
class RelayEnvelope:
    """One transaction: who sends, the parsed addresses, what the relay decided."""

    mail_from: str | None = None
    rcpt_tos: list[str] = field(default_factory=list)
    content: bytes | None = None
    original_content: bytes | None = None
    principal: Principal | None = None
    sender: Address | None = None  # None: the null reverse-path <>
    recipients: list[Address] = field(default_factory=list)
    recipient_keys: set[str] = field(default_factory=set)
    dsn_ret: delivery_pb2.DsnReturn.ValueType = delivery_pb2.DSN_RETURN_UNSPECIFIED
    dsn_envid: str = ""
    # Per recipient, in the order of `recipients`: (NOTIFY flags or None, ORCPT or "").
    recipient_dsn: list[tuple[tuple[bool, bool, bool, bool] | None, str]] = field(
        default_factory=list
    )


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


def _strip_keyword(keyword: str, arg: str) -> str | None:
    """``FROM:``/``TO:`` and what follows it, or None (case-insensitive, as aiosmtpd)."""
    if arg[: len(keyword)].upper() == keyword:
        return arg[len(keyword) :].strip()
    return None


_Command = Callable[["RelaySMTP", str | None], None]


class RelaySMTP(asyncio.Protocol):
    """One SMTP connection of the relay."""

    def __init__(
        self,
        relay: RelayHandler,
        *,
        tls_context: ssl.SSLContext | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.relay = relay
        self.loop = loop or asyncio.get_running_loop()
        self.hostname = relay.hostname
        self.tls_context = tls_context
        self.session_timeout = relay.session_timeout
        # Set by admission (`RelayHandler.open_connection`): the SIZE announced and enforced,
        # and whether AUTH needs TLS (plain-text AUTH is allowed on loopback only, when the
        # policy says so).
        self.data_size_limit = 0
        self.auth_require_tls = True
        self.transport: asyncio.BaseTransport | None = None
        self.session = Session(None)
        self.envelope = RelayEnvelope()
        self.client_ip = ""
        self.client_address: IPAddressValue = ipaddress.IPv4Address(0)  # parsed once
        self.slot: Slot | None = None
        self.admission: Admission | None = None
        self.tls = False
        self._buffer = b""
        self._data: DataReader | None = None  # reading DATA
        self._skipping = False  # dropping the rest of a line beyond LINE_LENGTH_LIMIT
        self._task: asyncio.Task[None] | None = None  # a command that waits for something
        self._line_waiter: asyncio.Future[None] | None = None  # that task, for a line
        self._write_paused = False
        self._read_paused = False  # by PIPELINE_LIMIT
        self._starting_tls = False
        self._closing = False
        self._lost = False
        self._unknown_left = BOGUS_LIMIT
        self._refused_left = 0  # commands a refused client has left; 0: not refused
        self._deadline = 0.0  # of the session timeout (`_reset_timeout`)
        self._timer: asyncio.TimerHandle | None = None

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.session = Session(peer)
        self.client_ip = client_ip(peer)
        self.client_address = ipaddress.ip_address(self.client_ip)
        self._reset_timeout()
        refusal = self.relay.open_connection(self)
        if refusal is None:
            self._write(_on_the_wire(GREETING.format(hostname=self.hostname)))
            return
        self.push(refusal)
        if refusal.startswith("421") or self.relay.refused_sessions >= REFUSED_SESSIONS_MAX:
            self.close()
            return
        # RFC 5321 §3.1: after a 554 greeting, wait for QUIT and answer 503 to anything else.
        self._reset_timeout(REFUSED_SESSION_TIMEOUT)
        self.relay.refused_sessions += 1
        self._refused_left = REFUSED_SESSION_COMMANDS

    def connection_lost(self, error: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        if self.slot is not None:
            self.relay.gate.close(self.slot)
        if self._refused_left:
            self._refused_left = 0
            self.relay.refused_sessions -= 1
        if self._timer is not None:
            self._timer.cancel()
        if self._line_waiter is not None and not self._line_waiter.done():
            self._line_waiter.cancel()
        if self._task is not None:
            # A publish under way goes on (see RelayHandler.data); the client hears nothing.
            self._task.cancel()
        self._buffer = b""

    def close(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer = self._buffer + data if self._buffer else data
        if self._line_waiter is not None:
            if not self._line_waiter.done():
                self._line_waiter.set_result(None)
        elif self._task is None:
            self._process()
        elif len(self._buffer) > PIPELINE_LIMIT and not self._starting_tls:
            # Not during STARTTLS: its handshake owns the plain transport's reading.
            self._pause_reading()

    def _pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        # The client reads no replies: stop reading its commands until it does (asyncio's
        # flow control; the transport's buffer is past its high-water mark).
        self._write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()  # type: ignore[attr-defined]

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is not None and not self._closing:
            if not self._read_paused:
                self.transport.resume_reading()  # type: ignore[attr-defined]
            if self._task is None:
                self._process()

    # -- the session timeout: one timer, moved by each command ---------------------------------

    def _reset_timeout(self, duration: float | None = None) -> None:
        # Each command only moves the deadline; the timer, when it fires before the deadline,
        # is set again for it. A shorter timeout (a refused session's) starts a new timer.
        deadline = self.loop.time() + (duration or self.session_timeout)
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer.cancelled() or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._timeout)

    def _timeout(self) -> None:
        if self._deadline - self.loop.time() > TIMER_SLACK:
            self._timer = self.loop.call_at(self._deadline, self._timeout)
            return
        logger.debug("%s session timeout", self.client_ip)
        self.close()

    # -- replies ---------------------------------------------------------------------------

    def _write(self, wire: bytes) -> None:
        if not self._lost and self.transport is not None:
            self.transport.write(wire)  # type: ignore[attr-defined]

    def push(self, status: str) -> None:
        """Send a reply (its enhanced status added, only printable ASCII left)."""
        if status[:1] in ("4", "5"):
            metrics.REJECTED.labels(metrics.SMTP, status[:3]).inc()
        self._write(_on_the_wire(status))

    def reply(self, status: str) -> None:
        """Push ``status``; a 421 also closes the channel (RFC 5321 §3.8)."""
        self.push(status)
        if status.startswith("421"):
            self.close()

    # -- reading: lines, or DATA ---------------------------------------------------------------

    def _next_line(self) -> bytes | None:
        """The next whole line from the buffer (its CRLF or LF kept), `_TOO_LONG` for a line
        beyond the limit (read to its end and dropped), None until a line is complete."""
        buffer = self._buffer
        end = buffer.find(b"\n", 0, LINE_LENGTH_LIMIT + 1)
        if end < 0:
            if len(buffer) > LINE_LENGTH_LIMIT:
                end = buffer.find(b"\n", LINE_LENGTH_LIMIT + 1)
                if end < 0:
                    self._skipping = True
                    self._buffer = b""
                    return None
                self._buffer = buffer[end + 1 :]
                self._skipping = False
                return _TOO_LONG
            return None
        self._buffer = buffer[end + 1 :]
        if self._skipping:
            self._skipping = False
            return _TOO_LONG
        return buffer[: end + 1]

    def _process(self) -> None:
        """Answer what the buffer holds, in order, until a command has to wait."""
        while not self._closing and not self._write_paused and self._task is None:
            data = self._data
            if data is not None:
                rest = data.take(self._buffer)
                if rest is None:
                    self._buffer = b""
                    return
                self._buffer = rest
                self._data = None
                self._answer(self._data_ended, data)
                continue
            line = self._next_line()
            if line is None:
                return
            if self._refused_left:
                self._refused_command(line)
            elif line is _TOO_LONG:
                self.push(COMMAND_TOO_LONG)
            else:
                self._answer(self._command, line)

    def _answer(self, step: Callable[[Any], None], what: Any) -> None:
        # An unexpected error becomes a temporary 451, never a traceback to the client.
        try:
            step(what)
        except Exception as error:
            self.push(self.relay.unexpected_error(error))

    def _refused_command(self, line: bytes) -> None:
        if line.strip().upper() == b"QUIT":
            self.push(replies.BYE)
            self.close()
            return
        if line is _TOO_LONG:
            self.close()
            return
        self.push(replies.REFUSED_SESSION)
        self._refused_left -= 1
        if not self._refused_left:
            self.relay.refused_sessions -= 1
            self.close()

    async def _read_line(self) -> bytes:
        """A line for a command that waits (an AUTH response); `_TOO_LONG` as above."""
        while (line := self._next_line()) is None:
            self._line_waiter = self.loop.create_future()
            try:
                await self._line_waiter
            finally:
                self._line_waiter = None
        return line

    def _run(self, command: Coroutine[Any, Any, None]) -> None:
        """Run a command that waits; the commands behind it wait for it."""
        self._task = task = self.loop.create_task(command)
        task.add_done_callback(self._command_done)

    def _command_done(self, task: asyncio.Task[None]) -> None:
        self._task = None
        self._starting_tls = False
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.push(self.relay.unexpected_error(error))
        if not self._closing:
            self._process()
            if self._read_paused and self._task is None and not self._closing:
                self._read_paused = False
                if not self._write_paused and self.transport is not None:
                    self.transport.resume_reading()  # type: ignore[attr-defined]

    # -- commands ----------------------------------------------------------------------------

    def _command(self, line: bytes) -> None:
        line = line.rstrip(b"\r\n")
        if not line:
            self.push(BAD_SYNTAX)
            return
        verb, _, arg_bytes = line.partition(b" ")
        try:
            command = verb.upper().decode("ascii")
        except UnicodeDecodeError:
            self.push(BAD_SYNTAX)
            return
        # Decoded with surrogateescape: a non-ASCII address gets the address rules' 553
        # reason (SMTPUTF8 is not offered, RFC 6531 addresses are not supported).
        arg = arg_bytes.strip().decode("utf-8", "surrogateescape") if arg_bytes else None
        extended = command in ("MAIL", "RCPT") and self.session.extended_smtp
        if len(line) > (PATH_COMMAND_LIMIT if extended else COMMAND_LIMIT):
            self.push(COMMAND_TOO_LONG)
            return
        method = _COMMANDS.get(command)
        if method is None:
            self._unknown_left -= 1
            if self._unknown_left < 1:
                logger.warning("%s too many unknown commands", self.client_ip)
                self.push(TOO_MANY_UNKNOWN)
                self.close()
                return
            self.push(UNKNOWN_COMMAND.format(command=command))
            return
        self._reset_timeout()
        method(self, arg)

    def _helo_needed(self, helo: str = "HELO") -> bool:
        if not self.session.host_name:
            self.push(SEND_HELO_FIRST.format(helo=helo))
            return True
        return False

    # HELO and EHLO replies keep the plain form (RFC 2034 §3).
    def smtp_HELO(self, hostname: str | None) -> None:
        if not hostname:
            self._write(replies.SYNTAX_HELO.encode() + b"\r\n")
            return
        self.envelope = RelayEnvelope()
        self.session.extended_smtp = False
        self.session.host_name = hostname
        self._write(f"250 {self.hostname}\r\n".encode())

    def smtp_EHLO(self, hostname: str | None) -> None:
        if not hostname:
            self._write(replies.SYNTAX_EHLO.encode() + b"\r\n")
            return
        self.envelope = RelayEnvelope()
        self.session.extended_smtp = True
        self.session.host_name = hostname
        # RFC 2034 (every reply carries an enhanced status) and RFC 2920 (commands are read
        # in order from one stream and answered in turn, so clients may pipeline them).
        # SMTPUTF8 is not offered: the address rules are ASCII only.
        # DSN: RFC 3461 (NOTIFY, ORCPT, RET, ENVID; Postline sends the notices itself).
        keywords = [self.hostname, "PIPELINING", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES"]
        if self.data_size_limit:
            keywords.append(f"SIZE {self.data_size_limit}")  # RFC 1870
        if self.tls_context and not self.tls:
            keywords.append("STARTTLS")
        if not self.auth_require_tls or self.tls:
            keywords.append("AUTH " + " ".join(MECHANISMS))
        keywords.append("HELP")
        lines = [f"250-{k}" for k in keywords[:-1]] + [f"250 {keywords[-1]}"]
        self._write("\r\n".join(lines).encode() + b"\r\n")

    def smtp_NOOP(self, _: str | None) -> None:
        self.push(OK)

    def smtp_RSET(self, arg: str | None) -> None:
        if arg:
            self.push(SYNTAX_NO_ARGUMENT.format(command="RSET"))
            return
        self.envelope = RelayEnvelope()
        self.push(OK)

    def smtp_QUIT(self, arg: str | None) -> None:
        if arg:
            self.push(SYNTAX_NO_ARGUMENT.format(command="QUIT"))
            return
        self.push(BYE)
        self.close()

    def smtp_EXPN(self, _: str | None) -> None:
        self.push(EXPN_NOT_IMPLEMENTED)

    def smtp_HELP(self, arg: str | None) -> None:
        code = 250
        if arg:
            command = arg.upper()
            if command in SYNTAX and (command != "STARTTLS" or self.tls_context):
                text = SYNTAX[command]
                if self.session.extended_smtp:
                    text += EXTENDED_SYNTAX.get(command, "")
                self.push(f"250 Syntax: {text}")
                return
            code = 501
        commands = sorted(c for c in SYNTAX if c != "STARTTLS" or self.tls_context)
        self.push(f"{code} Supported commands: {' '.join(commands)}")

    # -- VRFY: never verified (RFC 5321 §3.5.3), but the argument is checked -----------------

    def smtp_VRFY(self, arg: str | None) -> None:
        if not arg:
            self.reply(replies.SYNTAX_VRFY)
            return
        if not _is_utf8(arg):
            self.reply(replies.NOT_UTF8)
            return
        try:
            path, _ = split_path(arg)
            parse_path(path)
        except AddressError as exc:
            self.reply(replies.BAD_ADDRESS.format(reason=exc.reason))
            return
        self.reply(replies.CANNOT_VRFY)

    # -- MAIL / RCPT with the design's address rules -----------------------------------------

    def smtp_MAIL(self, arg: str | None) -> None:
        if self._helo_needed():
            return
        envelope = self.envelope
        argument = _strip_keyword("FROM:", arg) if arg else None
        if argument is None:
            self.reply(replies.SYNTAX_MAIL)
            return
        if envelope.mail_from:
            self.reply(replies.NESTED_MAIL)
            return
        try:
            path, params = split_path(argument)
            sender = parse_path(path, allow_null=True)
        except AddressError as exc:
            self.reply(replies.BAD_ADDRESS.format(reason=exc.reason))
            return
        parameters, problem = self._mail_parameters(params)
        if parameters is None:
            self.reply(problem or replies.SYNTAX_MAIL)
            return
        self.reply(self.relay.mail(self, envelope, sender, parameters))

    def _mail_parameters(self, params: str) -> tuple[MailParameters | None, str | None]:
        """SIZE (RFC 1870), BODY (RFC 6152), RET and ENVID (RFC 3461); anything else is
        refused with 555."""
        if params and not self.session.extended_smtp:
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
        if params and not self.session.extended_smtp:
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

    def smtp_RCPT(self, arg: str | None) -> None:
        if self._helo_needed():
            return
        envelope = self.envelope
        if not envelope.mail_from:
            self.reply(replies.NEED_MAIL)
            return
        argument = _strip_keyword("TO:", arg) if arg else None
        if argument is None:
            self.reply(replies.SYNTAX_RCPT)
            return
        try:
            path, params = split_path(argument)
            recipient = parse_path(path)
        except AddressError as exc:
            self.reply(replies.BAD_ADDRESS.format(reason=exc.reason))
            return
        parameters, problem = self._rcpt_parameters(params)
        if parameters is None:
            self.reply(problem or replies.SYNTAX_RCPT)
            return
        assert recipient is not None  # parse_path gives None only with allow_null
        self.reply(self.relay.rcpt(envelope, recipient, parameters))

    # -- DATA: read as it comes, published once whole -----------------------------------------

    def smtp_DATA(self, arg: str | None) -> None:
        if self._helo_needed():
            return
        if not self.envelope.rcpt_tos:
            self.reply(replies.NEED_RCPT)
            return
        if arg:
            self.reply(replies.SYNTAX_DATA)
            return
        self.push(replies.START_DATA)
        self._data = DataReader(self.data_size_limit)

    def _data_ended(self, data: DataReader) -> None:
        envelope, self.envelope = self.envelope, RelayEnvelope()
        status = data.refusal()
        if status is not None:
            self.reply(status)
            return
        envelope.content = envelope.original_content = data.content
        self._run(self._deliver(envelope))

    async def _deliver(self, envelope: RelayEnvelope) -> None:
        self.reply(await self.relay.data(self, envelope))

    # -- STARTTLS (RFC 3207) -------------------------------------------------------------------

    def smtp_STARTTLS(self, arg: str | None) -> None:
        if arg:
            self.push(SYNTAX_NO_ARGUMENT.format(command="STARTTLS"))
            return
        if not self.tls_context:
            self.push(TLS_NOT_AVAILABLE)
            return
        if self.tls:
            self.push(TLS_ACTIVE)
            return
        # Nothing the client sends now reaches the buffer before the handshake: whatever it
        # pipelined after STARTTLS is dropped (RFC 3207 §4.2, "STARTTLS injection").
        assert self.transport is not None
        self.transport.pause_reading()  # type: ignore[attr-defined]
        self._buffer = b""
        self.push(TLS_READY)
        self._starting_tls = True
        self._run(self._start_tls(self.tls_context))

    async def _start_tls(self, context: ssl.SSLContext) -> None:
        plain = self.transport
        assert isinstance(plain, asyncio.Transport)
        try:
            transport = await self.loop.start_tls(plain, self, context, server_side=True)
        except (OSError, EOFError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            logger.info("%s TLS handshake failed: %s", self.client_ip, exc)
            plain.close()
            self.connection_lost(None)  # the TLS layer may not say so
            return
        assert transport is not None
        self.transport = transport
        self.tls = True
        # RFC 3207 §4.2: what was known before TLS is forgotten (EHLO again, AUTH again).
        self.session = Session(plain.get_extra_info("peername"))
        self.session.ssl = {
            name: transport.get_extra_info(name)
            for name in ("sslcontext", "peercert", "cipher", "compression", "ssl_object")
        }
        self.envelope = RelayEnvelope()
        self._reset_timeout()
        # What the buffer holds now came inside TLS (the plain text was dropped at STARTTLS):
        # `_command_done` answers it.

    # -- AUTH (RFC 4954): PLAIN and LOGIN, checked by the relay off the event loop ------------

    def smtp_AUTH(self, arg: str | None) -> None:
        session = self.session
        if self._helo_needed("EHLO"):
            return
        if not session.extended_smtp:
            self.push(AUTH_NOT_RECOGNIZED)
        elif self.auth_require_tls and not self.tls:
            self.push(replies.ENCRYPTION_REQUIRED)
        elif session.authenticated:
            self.push(AUTH_ALREADY)
        elif not arg:
            self.push(AUTH_NO_VALUE)
        elif len(args := arg.split()) > 2:
            self.push(AUTH_TOO_MANY_VALUES)
        elif args[0] not in MECHANISMS:
            self.push(AUTH_UNKNOWN_MECHANISM)
        else:
            self._run(self._auth(args[0], args[1:]))

    async def _auth(self, mechanism: str, initial: list[str]) -> None:
        if mechanism == "PLAIN":
            credentials = await self._plain(initial)
        else:
            credentials = await self._login(initial)
        if credentials is None:
            return  # answered already
        result = await self.relay.authenticate(self, mechanism, credentials)
        if result.success:
            self.session.authenticated = True
            self.session.auth_data = result.auth_data
            self.push(result.message or AUTH_OK)
        elif not result.handled:
            self.push(result.message or replies.AUTH_INVALID)

    async def _plain(self, initial: list[str]) -> LoginPassword | None:
        # RFC 4616: authzid NUL authcid NUL passwd (the authzid is ignored).
        if initial:
            value = self._decoded(initial[0])
        else:
            value = await self._challenge(b"")
        if value is None:
            return None
        try:
            _, login, password = value.split(b"\x00")
        except ValueError:
            self.push(AUTH_CANNOT_SPLIT)
            return None
        return LoginPassword(login, password)

    async def _login(self, initial: list[str]) -> LoginPassword | None:
        if initial:
            login = self._decoded(initial[0])
        else:
            login = await self._challenge(LOGIN_USER_PROMPT)
        if login is None:
            return None
        password = await self._challenge(LOGIN_PASSWORD_PROMPT)
        if password is None:
            return None
        return LoginPassword(login, password)

    def _decoded(self, value: str) -> bytes | None:
        try:
            return b64decode(value.encode("utf-8", "surrogateescape"), validate=True)
        except (binascii.Error, ValueError):
            self.push(AUTH_BAD_BASE64)
            return None

    async def _challenge(self, challenge: bytes) -> bytes | None:
        """Send a ``334`` challenge (RFC 4954 §4: a space even when empty); the client's
        response decoded, or None once the client was answered why not."""
        self._write(b"334 " + b64encode(challenge) + b"\r\n")
        line = await self._read_line()
        if line is _TOO_LONG:
            self.push(replies.LINE_TOO_LONG)
            return None
        blob = line.strip()
        if blob == b"*":
            self.push(AUTH_ABORTED)
            return None
        try:
            return b64decode(blob, validate=True)
        except binascii.Error:
            self.push(AUTH_BAD_BASE64)
            return None


_COMMANDS: dict[str, _Command] = {
    name.removeprefix("smtp_"): function
    for name, function in vars(RelaySMTP).items()
    if name.startswith("smtp_")
}
