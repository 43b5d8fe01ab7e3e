"""The receiving SMTP server (aiosmtpd): bounce mails for the return-path domains, and
ordinary mail for the ``inbound`` domains.

Recipients in a ``return_path_domain`` are bounce addresses (that wins when a domain is
both); recipients in an ``inbound`` domain get their mail POSTed to its webhook
(``inbound.py``); anything else is refused (``550 5.7.1``, no relaying). A mail is answered
``250`` only after what it produced was confirmed by RabbitMQ (error-log rows, suppression
changes, complaints, inbound mail) or written; an unexpected error becomes a temporary
``451 4.3.0`` so the sending MTA tries again, never a lost mail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session
from opentelemetry import trace

from postline.bounce import metrics
from postline.bounce.bounces import BounceMails
from postline.bounce.inbound import InboundMail
from postline.bounce.mail.model import Kind
from postline.bounce.suppressions import SuppressionList
from postline.common.broker import Broker
from postline.common.broker.connection import BrokerUnavailable
from postline.common.broker.topology import COMPLAINT_KEY
from postline.common.policy import Policy
from postline.common.semconv import DELIVERY_ID, ERROR_STATUS, SPAN_BOUNCE_MAIL, SPAN_INBOUND_MAIL
from postline.common.telemetry import tracer
from postline.common.webhooks import Endpoint, inbound_endpoint

logger = logging.getLogger(__name__)

OK = "250 2.0.0 Ok: bounce received"
OK_INBOUND = "250 2.0.0 Ok: queued as {}"
RCPT_OK = "250 2.1.5 Ok"
NOT_OURS = "550 5.7.1 Relaying denied: not a domain this server receives mail for"
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
        inbound: InboundMail | None = None,
    ) -> None:
        self.mails = mails
        self.suppressions = suppressions
        self.broker = broker
        self.policy = policy
        self.inbound = inbound or InboundMail(broker)

    def _is_bounce_address(self, address: str) -> bool:
        domain = _domain(address)
        return any(
            str(s.return_path_domain).lower() == domain for s in self.policy().servers.values()
        )

    def _inbound_for(self, address: str) -> Endpoint | None:
        entry = self.policy().inbound_for(_domain(address))
        return inbound_endpoint(entry) if entry is not None else None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not self._is_bounce_address(address) and self._inbound_for(address) is None:
            return NOT_OURS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        if not isinstance(content, bytes):
            content = str(content or "").encode("utf-8", "surrogateescape")
        bounces: list[str] = []
        inbound: dict[str, tuple[Endpoint, list[str]]] = {}
        for rcpt in envelope.rcpt_tos:
            endpoint = None if self._is_bounce_address(rcpt) else self._inbound_for(rcpt)
            if endpoint is None:
                bounces.append(rcpt)
            else:
                inbound.setdefault(endpoint.id, (endpoint, []))[1].append(rcpt)
        mail_ids = []
        try:
            if bounces:
                await self.receive(content, bounces)
            for endpoint, rcpts in inbound.values():
                with tracer(__name__).start_as_current_span(SPAN_INBOUND_MAIL):
                    mail_ids.append(
                        await self.inbound.publish(
                            endpoint,
                            _reverse_path(envelope.mail_from),
                            rcpts,
                            content,
                            client_ip=str(session.peer[0]) if session.peer else "",
                            helo=session.host_name or "",
                        )
                    )
        except BrokerUnavailable as exc:
            logger.warning("%s: mail not processed, broker unavailable: %s", envelope.rcpt_tos, exc)
            return TRY_LATER
        except Exception:
            logger.exception("%s: mail not processed", envelope.rcpt_tos)
            return TRY_LATER
        return OK_INBOUND.format(" ".join(mail_ids)) if mail_ids and not bounces else OK

    async def receive(self, content: bytes, rcpt_tos: list[str]) -> None:
        """Classify one received mail. Its span is a trace of its own (another MTA's
        transaction, maybe days after the delivery) linked to the trace of each delivery it
        reports on, whose id the delivery's record gives: the delivery's timeline shows it."""
        policy = self.policy()
        with tracer(__name__).start_as_current_span(SPAN_BOUNCE_MAIL) as span:
            outcome = await self.mails.process(content, rcpt_tos, policy)
            await self.broker.publish_events(outcome.errors)
            metrics.BOUNCE_MAILS.labels(_KINDS.get(outcome.report.kind, "other")).inc()
            for complaint in outcome.complaints:
                await self.broker.publish(COMPLAINT_KEY, complaint)
            for error in outcome.errors:
                span.set_attribute(DELIVERY_ID, error.delivery_id)
                span.set_attribute(ERROR_STATUS, int(error.status))
                metrics.CLASSIFIED.labels(str(int(error.status)), metrics.BOUNCE_MAIL).inc()
                if error.trace_id:
                    span.add_link(
                        delivery_trace(error.trace_id),
                        {DELIVERY_ID: error.delivery_id, ERROR_STATUS: int(error.status)},
                    )
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


_KINDS = {Kind.BOUNCE: "bounce", Kind.FEEDBACK: "complaint"}


def delivery_trace(trace_id: str) -> trace.SpanContext:
    """A link target for a delivery's trace when only its id is known (no span of it is)."""
    return trace.SpanContext(int(trace_id, 16), 0, is_remote=True)


def _reverse_path(mail_from: str | None) -> str:
    """The envelope sender, "" for the null reverse-path (aiosmtpd keeps it as ``<>``)."""
    return "" if mail_from in (None, "<>") else str(mail_from)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip(">").lower().removesuffix(".")


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
