"""One delivery attempt, as a list of named steps, reduced to a :class:`DeliveryResult`.

    server -> envelope -> message -> destinations -> deliver

Each step may end the attempt with a reply (a local one or the destination's); the reply
decides the outcome: 2xx succeeded; 4xx, connection failures and timeouts deferred; 5xx
failed (see :mod:`postline.sender.replies`).

Where each decision is made:

* Return path (VERP): the scheduler may set ``task.return_path``; when it is empty the sender
  makes one from the server's ``return_path_domain`` (:func:`postline.common.verp.encode_verp`),
  since it holds the policy too. A message submitted with the null reverse-path (``<>``, e.g.
  an application's own notification) keeps it: RFC 5321 §4.5.5 forbids notifications about
  notifications. The envelope sender used goes back in ``result.task.return_path``.
* Destination: the task's route (set by the scheduler from the policy's ``routes``) bypasses
  DNS; otherwise the recipient domain's MX hosts, tried in preference order, the next host
  only when one could not be reached or refused the session (at most ``MAX_ADDRESSES``
  addresses per attempt, as Postfix's smtp_mx_address_limit).
* TLS: the task's mode, made ``required`` by the server's ``require_tls`` (:mod:`.tls`).
* Source IP: the task's, else one of the server's pool (:mod:`.sources`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field

from postline.common.addresses import AddressError, parse_address
from postline.common.policy import Policy, PolicySource, Server, SpeedLimit
from postline.common.policy.fields import IPAddressValue
from postline.common.timeutil import to_timestamp
from postline.common.tls_modes import route_tls, tls_mode
from postline.common.verp import VerpError, encode_verp
from postline.sender import message, replies, signing, sources
from postline.sender.mx import LookupFailed, MailHost, MxResolver
from postline.sender.pool import SessionPool
from postline.sender.replies import Reply
from postline.sender.smtp import Endpoint, SessionFailed, SmtpSession
from postline.v1 import delivery_pb2
from postline.v1.delivery_pb2 import TlsMode

logger = logging.getLogger(__name__)

MAX_ADDRESSES = 5
BAD_ADDRESS = (553, "5.1.3 {address} cannot be sent: {reason}")


@dataclass
class _Attempt:
    """What the steps learn on the way."""

    task: delivery_pb2.DeliveryTask
    result: delivery_pb2.DeliveryResult
    server: Server | None = None
    return_path: str = ""
    content: bytes = b""
    hosts: list[MailHost] = field(default_factory=list)
    port: int = 25
    tls: TlsMode.ValueType = delivery_pb2.TLS_MODE_UNSPECIFIED  # the task's unless routed here
    limit: SpeedLimit | None = None


class Deliverer:
    def __init__(
        self,
        policy: PolicySource,
        resolver: MxResolver,
        pool: SessionPool,
        *,
        smtp_port: int = 25,
    ) -> None:
        self._policy = policy
        self.resolver = resolver
        self.pool = pool
        self.smtp_port = smtp_port

    @property
    def policy(self) -> Policy:
        return self._policy()

    async def attempt(self, task: delivery_pb2.DeliveryTask) -> delivery_pb2.DeliveryResult:
        started = time.time()
        result = delivery_pb2.DeliveryResult(started_at=to_timestamp(started))
        result.task.CopyFrom(task)
        attempt = _Attempt(task, result)
        try:
            reply = (
                self._server(attempt)
                or self._envelope(attempt)
                or await self._message(attempt)
                or await self._destinations(attempt)
                or await self._deliver(attempt)
            )
        except Exception as exc:
            # A bug must not bounce the task between senders forever: defer it, so the
            # scheduler retries it later and the resend period bounds the retries.
            logger.exception("%s attempt failed unexpectedly", task.delivery.delivery_id)
            reply = Reply.make(replies.LOCAL_ERROR, replies.LOCAL, error=type(exc).__name__)
        result.outcome = reply.outcome
        result.reply_code = reply.code
        result.reply_text = reply.text
        result.enhanced_status = reply.enhanced_status
        result.stage = reply.stage
        result.finished_at.CopyFrom(to_timestamp(time.time()))
        return result

    # -- steps: each returns the reply that ends the attempt, or None to go on ------------

    def _server(self, a: _Attempt) -> Reply | None:
        a.server = self.policy.servers.get(a.task.delivery.server)
        if a.server is None:
            return Reply.make(replies.UNKNOWN_SERVER, replies.LOCAL, server=a.task.delivery.server)
        return None

    def _envelope(self, a: _Attempt) -> Reply | None:
        assert a.server is not None
        delivery = a.task.delivery
        for address in filter(None, (delivery.recipient, a.task.return_path)):
            try:
                parse_address(address)
            except AddressError as exc:
                return Reply.make(BAD_ADDRESS, replies.LOCAL, address=address, reason=exc.reason)
        a.return_path = a.task.return_path
        if not a.return_path and delivery.envelope_from:
            try:
                a.return_path = encode_verp(delivery.delivery_id, a.server.return_path_domain)
            except VerpError as exc:
                logger.warning("%s no VERP return path: %s", delivery.delivery_id, exc)
        a.result.task.return_path = a.return_path
        if not a.return_path:
            a.return_path = delivery.envelope_from
        return None

    async def _message(self, a: _Attempt) -> Reply | None:
        assert a.server is not None
        content = message.crlf(a.task.delivery.content)
        if a.server.strip_received_headers:
            content = message.strip_received(content)
        domain = message.from_domain(content)
        key = a.server.dkim_for(domain) if domain else None
        if key is not None:
            try:
                # Off the event loop: hashing a large body takes a while.
                content = await asyncio.to_thread(signing.sign, content, key)
            except signing.SigningFailed as exc:
                logger.error(
                    "%s DKIM signing for %s failed: %s",
                    a.task.delivery.delivery_id,
                    key.domain,
                    exc,
                )
                return Reply.make(
                    replies.DKIM_KEY_UNUSABLE, replies.LOCAL, domain=key.domain, error=exc
                )
            a.result.dkim_domain = key.domain
        a.content = content
        return None

    async def _destinations(self, a: _Attempt) -> Reply | None:
        assert a.server is not None
        task = a.task
        started = time.monotonic()
        route_host, a.port = task.route_host, task.route_port or 25
        if not route_host and (route := a.server.route_for(task.delivery.recipient_domain)):
            # A task from a scheduler that left routing to us: the policy's route still wins.
            route_host, a.port = route.to.host, route.to.port
            a.tls = route_tls(route)
        if route_host:
            try:
                addresses = await _route_addresses(route_host, a.port)
            except OSError as exc:
                return Reply.make(replies.NO_ROUTE_ADDRESS, replies.DNS, host=route_host, error=exc)
            a.hosts = [MailHost(route_host, 0, addresses)]
            a.limit = a.server.speed_for(task.delivery.recipient_domain)
        else:
            a.port = self.smtp_port
            try:
                a.hosts = await self.resolver.mail_hosts(task.delivery.recipient_domain)
            except LookupFailed as failure:
                return failure.reply
            finally:
                a.result.dns_ms = _ms_since(started)
            a.limit = a.server.speed_for(task.delivery.recipient_domain, [h.name for h in a.hosts])
        return None

    async def _deliver(self, a: _Attempt) -> Reply:
        assert a.server is not None and a.limit is not None
        mode = tls_mode(a.tls or a.task.tls, a.task.delivery.recipient_domain, a.server)
        source_ip = self._source_ip(a, mode)
        targets = [
            (host, address)
            for host in a.hosts
            for address in host.addresses
            if sources.same_family(source_ip, address)
        ][:MAX_ADDRESSES]
        if not targets:
            hosts = ", ".join(h.name for h in a.hosts)
            return Reply.make(
                replies.CONNECT_FAILED,
                replies.CONNECT,
                host=hosts,
                error=f"no address of the family of source IP {source_ip}",
            )
        reply: Reply | None = None
        for host, address in targets:
            endpoint = Endpoint(address, a.port, host.name, source_ip, mode)
            a.result.mx_host = host.name
            a.result.mx_address = endpoint.peer
            a.result.source_ip = source_ip
            reply = await self._send(a, endpoint)
            if reply.stage not in (replies.CONNECT, replies.EHLO, replies.STARTTLS):
                return reply  # the host answered; another MX is only for unreachable ones
            logger.info("%s %s: %s", a.task.delivery.delivery_id, endpoint, reply)
        assert reply is not None
        return reply

    async def _send(self, a: _Attempt, endpoint: Endpoint) -> Reply:
        """Open or reuse a session and run the transaction; a reused session that turns out
        to be dead (the server dropped it while idle) is replaced once, transparently."""
        assert a.limit is not None
        for _ in range(2):
            started = time.monotonic()
            try:
                session, reused = await self.pool.acquire(
                    a.limit.key, endpoint, max_sessions=a.limit.connections
                )
            except SessionFailed as failure:
                a.result.connect_ms = _ms_since(started)
                return failure.reply
            a.result.connect_ms = 0 if reused else _ms_since(started)
            started = time.monotonic()
            try:
                reply = await session.send(a.return_path, a.task.delivery.recipient, a.content)
            except BaseException:
                self.pool.discard(a.limit.key, session)  # cancelled mid-transaction
                raise
            a.result.transaction_ms = _ms_since(started)
            if reused and _stale(reply, session):
                logger.info(
                    "%s reused session to %s was dead: %s",
                    a.task.delivery.delivery_id,
                    endpoint,
                    reply,
                )
                self.pool.discard(a.limit.key, session)
                continue
            self._describe_session(a.result, session, reused)
            await self.pool.release(
                a.limit.key, session, max_messages=a.limit.messages_per_connection
            )
            return reply
        return reply

    def _source_ip(self, a: _Attempt, mode: TlsMode.ValueType) -> str:
        assert a.limit is not None
        if a.task.source_ip:
            return a.task.source_ip
        pool = _texts(self.policy.source_addresses(a.task.delivery.server))
        candidates = sources.window(pool, a.limit.source_ips, a.limit.key)
        first = next((addr for h in a.hosts for addr in h.addresses), "")
        key = a.limit.key

        def has_idle(ip: str) -> bool:
            endpoint = Endpoint(first, a.port, a.hosts[0].name, ip, mode)
            return self.pool.idle_sessions(key, endpoint) > 0

        return sources.choose(
            candidates,
            has_idle=has_idle,
            open_sessions=lambda ip: self.pool.open_sessions(key, ip),
        )

    @staticmethod
    def _describe_session(
        result: delivery_pb2.DeliveryResult, session: SmtpSession, reused: bool
    ) -> None:
        result.source_ip = session.local_address
        result.connection_reused = reused
        result.session_messages = session.messages
        if session.tls is not None:
            result.tls = True
            result.tls_version = session.tls.version
            result.tls_cipher = session.tls.cipher
            result.tls_verified = session.tls.verified


def _stale(reply: Reply, session: SmtpSession) -> bool:
    """A reused session dropped at MAIL (or answered 421 there): the server had closed it
    while idle, so the delivery itself was not tried."""
    return reply.stage == replies.MAIL and (session.dropped or reply.code == 421)


async def _route_addresses(host: str, port: int) -> tuple[str, ...]:
    """A route's host: an IP address as is, a name as the OS resolves it (/etc/hosts too)."""
    literal = _ip_literal(host)
    if literal is not None:
        return (literal,)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = dict.fromkeys(str(info[4][0]) for info in infos)
    return tuple(sorted(addresses, key=lambda a: ":" in a))  # IPv4 first


@functools.lru_cache(maxsize=1024)
def _ip_literal(host: str) -> str | None:
    """A route's host in its normal form if it is an IP address (routes are few: each parsed
    once)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


@functools.lru_cache(maxsize=256)
def _texts(pool: tuple[IPAddressValue, ...]) -> tuple[str, ...]:
    """A source IP pool's addresses as text (the pools are the policy's: each converted once)."""
    return tuple(str(ip) for ip in pool)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
