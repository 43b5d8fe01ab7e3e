"""The bounce receiving SMTP server (aiosmtpd): bounce mails for the return-path domains.

Only the policy's ``return_path_domain``s are accepted (anything else: ``550 5.7.1``, no
relaying). A mail is answered ``250`` only after what it produced was confirmed by RabbitMQ
(error-log rows, suppression changes) or written (complaints); an unexpected error becomes
a temporary ``451 4.3.0`` so the reporting MTA tries again, never a lost bounce.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from postline.bounce.bounces import BounceMails
from postline.bounce.suppressions import SuppressionList
from postline.common.broker import Broker
from postline.common.broker.connection import BrokerUnavailable
from postline.common.policy import Policy
from postline.common.semconv import DELIVERY_ID, ERROR_STATUS, SPAN_BOUNCE_MAIL
from postline.common.telemetry import tracer

logger = logging.getLogger(__name__)

OK = "250 2.0.0 Ok: bounce received"
RCPT_OK = "250 2.1.5 Ok"
NOT_OURS = "550 5.7.1 Relaying denied: not a return-path domain of this server"
TRY_LATER = "451 4.3.0 Temporary failure, please try again later"
DEFAULT_MAX_SIZE = 25 * 1024 * 1024


class BounceHandler:
    """aiosmtpd handler: one instance serves every connection of the listener."""

    def __init__(
        self,
        mails: BounceMails,
        suppressions: SuppressionList,
        broker: Broker,
        policy: Callable[[], Policy],
    ) -> None:
        self.mails = mails
        self.suppressions = suppressions
        self.broker = broker
        self.policy = policy

    def _ours(self, address: str) -> bool:
        domain = address.rpartition("@")[2].strip(">").lower()
        return any(
            str(s.return_path_domain).lower() == domain for s in self.policy().servers.values()
        )

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not self._ours(address):
            return NOT_OURS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        if not isinstance(content, bytes):
            content = str(content or "").encode("utf-8", "surrogateescape")
        try:
            await self.receive(content, list(envelope.rcpt_tos))
        except BrokerUnavailable as exc:
            logger.warning(
                "%s: bounce not processed, broker unavailable: %s", envelope.rcpt_tos, exc
            )
            return TRY_LATER
        except Exception:
            logger.exception("%s: bounce not processed", envelope.rcpt_tos)
            return TRY_LATER
        return OK

    async def receive(self, content: bytes, rcpt_tos: list[str]) -> None:
        policy = self.policy()
        with tracer(__name__).start_as_current_span(SPAN_BOUNCE_MAIL) as span:
            outcome = await self.mails.process(content, rcpt_tos, policy)
            await self.broker.publish_events(outcome.errors)
            for error in outcome.errors:
                span.set_attribute(DELIVERY_ID, error.delivery_id)
                span.set_attribute(ERROR_STATUS, int(error.status))
                logger.info(
                    "%s bounce for %s classified as status %d",
                    error.delivery_id or "-",
                    error.to,
                    error.status,
                )
            for server, address, reason, delivery_id in outcome.suppress:
                blocking = policy.servers[server].blocking
                expiry = blocking.expiry
                await self.suppressions.add(
                    server,
                    address,
                    reason,
                    delivery_id=delivery_id,
                    expire_after=expiry.total_seconds() if expiry else None,
                )


async def start_receiver(
    handler: BounceHandler, host: str, port: int, *, hostname: str, max_size: int = DEFAULT_MAX_SIZE
) -> asyncio.Server:
    def factory() -> SMTP:
        # The greeting names the service, not the library and its version (aiosmtpd's default).
        return SMTP(
            handler,
            hostname=hostname,
            ident="Postline ESMTP",
            data_size_limit=max_size,
            decode_data=False,
        )

    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host=host, port=port)
