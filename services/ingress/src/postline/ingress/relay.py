"""The SMTP relay's decisions: who may connect and authenticate, the transaction's checks,
and the one confirmed publish of a message's deliveries.

Every check answers with a reply code and an enhanced status; an unexpected error becomes a
temporary ``451 4.3.0``, never a traceback to the client nor a half-accepted message.
One `RelayHandler` serves every connection; the protocol it decides for is
:mod:`postline.ingress.smtp_protocol`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import ssl
import time
from typing import Any

from postline.common.addresses import Address
from postline.common.broker import Broker
from postline.common.broker.connection import BrokerUnavailable
from postline.common.credentials import Credentials, Principal
from postline.common.dsn import dsn_request
from postline.common.policy import Policy, PolicySource
from postline.common.policy.fields import IPAddressValue
from postline.common.semconv import MESSAGE_ID, SERVER, SPAN_SMTP_TRANSACTION
from postline.common.telemetry import tracer
from postline.common.throttle import AuthThrottle, account_key, ip_key
from postline.ingress import metrics, replies
from postline.ingress.limits import ConnectionGate, RateLimiter
from postline.ingress.smtp_protocol import (
    SESSION_TIMEOUT,
    Admission,
    AuthResult,
    LoginPassword,
    MailParameters,
    RcptParameters,
    RelayEnvelope,
    RelaySMTP,
)
from postline.ingress.submission import (
    QUEUED_LINGER,
    Accepted,
    Submission,
    publish_deliveries,
    publish_queued,
)

logger = logging.getLogger(__name__)
_tracer = tracer(__name__)


def _is_loopback(address: IPAddressValue) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class RelayHandler:
    """The relay's decisions; one instance serves every connection."""

    def __init__(
        self,
        broker: Broker,
        policy: PolicySource,
        hostname: str,
        *,
        session_timeout: float = SESSION_TIMEOUT,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.broker = broker
        self._policy = policy
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
    def policy(self) -> Policy:
        """The policy as it is now (a reloaded file applies to the next command)."""
        return self._policy()

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
        policy = self.policy
        servers = self.gate.accepting_servers(address)
        if not servers:
            logger.info("%s refused: not in any server's allowed_ips", ip)
            return replies.CLIENT_NOT_ALLOWED.format(hostname=self.hostname, ip=ip)
        slot = self.gate.open(ip, servers)
        if slot is None:
            logger.warning("%s refused: too many connections", ip)
            return replies.TOO_MANY_CONNECTIONS.format(hostname=self.hostname)
        unauthenticated = policy.unauthenticated_server(address)
        # Kept for MAIL while the policy stays the same (a reloaded one is asked again).
        conn.admission = Admission(policy, frozenset(servers), unauthenticated)
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
        conn.auth_require_tls = not (
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
            and conn.session.ssl is None
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
            conn.reply(replies.TOO_MANY_CONNECTIONS.format(hostname=self.hostname))
            return AuthResult(success=False, handled=True)
        conn.data_size_limit = relay.max_message_size
        return AuthResult(success=True, auth_data=principal)

    def _principal(self, conn: RelaySMTP, policy: Policy) -> Principal | None:
        session = conn.session
        if session.authenticated and isinstance(session.auth_data, Principal):
            return session.auth_data
        admission = conn.admission
        if admission is not None and admission.policy is policy:
            server = admission.unauthenticated
        else:
            server = policy.unauthenticated_server(conn.client_address)
        return Principal(server, "") if server is not None else None

    @staticmethod
    def _accepts(conn: RelaySMTP, policy: Policy, server: str) -> bool:
        """Whether ``server``'s ``allowed_ips`` let the client in (as found at connect while
        the policy is the one it was found with)."""
        admission = conn.admission
        if admission is not None and admission.policy is policy:
            return server in admission.servers
        return policy.servers[server].relay.accepts_connection_from(conn.client_address)

    # -- the transaction ------------------------------------------------------------------

    def mail(
        self,
        conn: RelaySMTP,
        envelope: RelayEnvelope,
        sender: Address | None,
        parameters: MailParameters,
    ) -> str:
        ip = conn.client_ip
        policy = self.policy
        principal = self._principal(conn, policy)
        if principal is None:
            return replies.AUTH_REQUIRED
        relay = policy.servers[principal.server].relay
        if not self._accepts(conn, policy, principal.server):
            return replies.CLIENT_NOT_ALLOWED.format(hostname=self.hostname, ip=ip)
        assert conn.slot is not None
        if not self.gate.assign(conn.slot, principal.server):
            return replies.TOO_MANY_CONNECTIONS.format(hostname=self.hostname)
        # RFC 1870 §6.1: a declared size beyond the limit is refused before any data.
        if parameters.size is not None and parameters.size > relay.max_message_size:
            return replies.MESSAGE_TOO_BIG
        if not self.rates.allow(principal.server, ip, relay.rate_per_ip):
            logger.info("%s over rate_per_ip %s of %s", ip, relay.rate_per_ip, principal.server)
            return replies.RATE_EXCEEDED.format(ip=ip)
        envelope.principal = principal
        envelope.sender = sender
        envelope.mail_from = sender.smtp_form() if sender is not None else "<>"
        envelope.dsn_ret = parameters.ret
        envelope.dsn_envid = parameters.envid
        return replies.MAIL_OK

    def rcpt(
        self,
        envelope: RelayEnvelope,
        recipient: Address,
        parameters: RcptParameters,
    ) -> str:
        assert envelope.principal is not None  # MAIL succeeded
        if recipient.key in envelope.recipient_keys:
            return replies.RCPT_OK  # the same mailbox twice is one delivery
        relay = self.policy.servers[envelope.principal.server].relay
        if len(envelope.recipients) >= relay.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        envelope.recipients.append(recipient)
        envelope.recipient_keys.add(recipient.key)
        envelope.recipient_dsn.append((parameters.notify, parameters.orcpt))
        envelope.rcpt_tos.append(recipient.smtp_form())
        return replies.RCPT_OK

    async def data(self, conn: RelaySMTP, relay_envelope: RelayEnvelope) -> str:
        """The reply to a message's data: ``250`` once its deliveries were confirmed."""
        principal = relay_envelope.principal
        if principal is None or not relay_envelope.recipients:
            return replies.NO_RECIPIENTS
        content = relay_envelope.original_content or b""
        if len(content) > self.policy.servers[principal.server].relay.max_message_size:
            return replies.MESSAGE_TOO_BIG
        ip = conn.client_ip
        submission = Submission(
            server=principal.server,
            api_user=principal.api_user,
            envelope_from=relay_envelope.sender,
            recipients=list(relay_envelope.recipients),
            content=content,
            client_ip=ip,
            accepted_at=time.time(),
            dsn=[
                dsn_request(
                    notify=notify,
                    orcpt=orcpt,
                    ret=relay_envelope.dsn_ret,
                    envid=relay_envelope.dsn_envid,
                )
                for notify, orcpt in relay_envelope.recipient_dsn
            ],
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
        metrics.ACCEPTED.labels(metrics.SMTP).inc(len(accepted.deliveries))
        return replies.QUEUED.format(message_id=accepted.message_id)

    async def _publish(self, submission: Submission) -> Accepted:
        with _tracer.start_as_current_span(SPAN_SMTP_TRANSACTION) as span:
            span.set_attribute(SERVER, submission.server)
            accepted = await publish_deliveries(self.broker, submission, self.hostname, self.policy)
            span.set_attribute(MESSAGE_ID, accepted.message_id)
            # The reply waits for the deliveries only (the design's condition for 250): the
            # queued events are best effort (see `publish_queued`) and follow in the background,
            # lingering a little for other messages' events to travel with.
            queued = publish_queued(self.broker, accepted, linger=QUEUED_LINGER)
            self._track(asyncio.ensure_future(queued))
            return accepted

    def unexpected_error(self, error: BaseException) -> str:
        logger.error("unexpected error in an SMTP command", exc_info=error)
        return replies.LOCAL_ERROR


async def start_smtp(
    handler: RelayHandler,
    host: str,
    port: int,
    *,
    tls_context: ssl.SSLContext | None,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Listen for SMTP on ``host:port``; STARTTLS is offered when ``tls_context`` is given.
    With ``reuse_port`` several processes listen on the same port (SO_REUSEPORT)."""
    loop = asyncio.get_running_loop()

    def factory() -> RelaySMTP:
        return RelaySMTP(handler, tls_context=tls_context, loop=loop)

    return await loop.create_server(factory, host=host, port=port, reuse_port=reuse_port or None)
