"""The SMTP relay (aiosmtpd): guard clauses answering in SMTP, then one confirmed publish.

Every check answers with a reply code and an enhanced status; an unexpected error becomes a
temporary ``451 4.3.0``, never a traceback to the client nor a half-accepted message.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from postline.common.addresses import AddressError, parse_address
from postline.common.broker import Broker
from postline.common.broker.connection import BrokerUnavailable
from postline.common.credentials import Credentials, Principal
from postline.common.policy import Policy
from postline.common.semconv import SPAN_SMTP_TRANSACTION
from postline.common.telemetry import tracer
from postline.ingress import replies
from postline.ingress.submission import Submission, submit

logger = logging.getLogger(__name__)

_LOOPBACK = ("127.", "::1")


def _client_ip(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class RelayHandler:
    """aiosmtpd handler: one instance serves every connection of the listener."""

    def __init__(self, broker: Broker, policy: Policy, hostname: str) -> None:
        self.broker = broker
        self.policy = policy
        self.hostname = hostname
        self.credentials = Credentials(policy)

    # -- authentication -------------------------------------------------------------------

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        client_ip = _client_ip(session)
        if session.ssl is None and not client_ip.startswith(_LOOPBACK):
            return AuthResult(success=False, handled=True, message="538 5.7.11 Encryption required")
        login = data.login.decode("utf-8", "replace")
        principal = self.credentials.check(
            login, data.password.decode("utf-8", "replace"), client_ip
        )
        if principal is None:
            logger.info("%s AUTH %s failed for %s", client_ip, mechanism, login)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=principal)

    def _principal(self, session: Session) -> Principal | None:
        if session.authenticated and isinstance(session.auth_data, Principal):
            return session.auth_data
        client_ip = _client_ip(session)
        for name, server in self.policy.servers.items():
            if server.relay.relays_without_auth_for(client_ip):
                return Principal(name, "")
        return None

    # -- SMTP commands --------------------------------------------------------------------

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._principal(session) is None:
            return replies.AUTH_REQUIRED
        if address:
            try:
                parse_address(address)
            except AddressError as exc:
                return replies.BAD_ADDRESS.format(reason=exc.reason)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        principal = self._principal(session)
        if principal is None:
            return replies.AUTH_REQUIRED
        try:
            parse_address(address)
        except AddressError as exc:
            return replies.BAD_ADDRESS.format(reason=exc.reason)
        if len(envelope.rcpt_tos) >= self.policy.servers[principal.server].relay.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        principal = self._principal(session)
        if principal is None:
            return replies.AUTH_REQUIRED
        if not envelope.rcpt_tos:
            return replies.NO_RECIPIENTS
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        if len(content) > self.policy.servers[principal.server].relay.max_message_size:
            return replies.MESSAGE_TOO_BIG
        with tracer(__name__).start_as_current_span(SPAN_SMTP_TRANSACTION):
            try:
                accepted = await submit(
                    self.broker,
                    Submission(
                        server=principal.server,
                        api_user=principal.api_user,
                        envelope_from=parse_address(envelope.mail_from)
                        if envelope.mail_from
                        else None,
                        recipients=[parse_address(a) for a in envelope.rcpt_tos],
                        content=content,
                        client_ip=_client_ip(session),
                        accepted_at=time.time(),
                    ),
                    self.hostname,
                )
            except BrokerUnavailable as exc:
                logger.warning("%s not accepted: %s", _client_ip(session), exc)
                return replies.BROKER_UNAVAILABLE
            except Exception:
                logger.exception("%s unexpected error in DATA", _client_ip(session))
                return replies.LOCAL_ERROR
        logger.info(
            "%s accepted from %s for %d recipients",
            accepted.message_id,
            _client_ip(session),
            len(accepted.deliveries),
        )
        return replies.QUEUED.format(message_id=accepted.message_id)


async def start_smtp(
    handler: RelayHandler,
    host: str,
    port: int,
    *,
    tls_context: ssl.SSLContext | None,
    max_message_size: int,
) -> asyncio.AbstractServer:
    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname=handler.hostname,
            ident="Postline ESMTP",
            tls_context=tls_context,
            require_starttls=False,
            authenticator=handler.authenticate,
            auth_required=False,
            # AUTH over plain text is refused in the authenticator, except from loopback.
            auth_require_tls=False,
            data_size_limit=max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
        )

    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host=host, port=port)
