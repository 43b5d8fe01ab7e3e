"""Incoming mail for the policy's ``inbound`` domains, handed to their webhooks.

The receiving server accepts ordinary mail for a domain listed under ``inbound`` and
publishes it, as received, to that endpoint's queue (``webhooks.<endpoint id>``, declared
here at start so nothing published is unroutable); it answers ``250`` only once RabbitMQ
confirmed the message. The reports service POSTs it from there, signed, with the retries of
every webhook (see ``postline.reports.webhooks``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from postline.common.broker import Broker
from postline.common.ids import new_id
from postline.common.policy import Policy
from postline.common.timeutil import to_timestamp
from postline.common.webhooks import Endpoint, inbound_endpoint
from postline.v1 import webhooks_pb2

logger = logging.getLogger(__name__)


class InboundMail:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._declaring: set[asyncio.Task[None]] = set()

    def on_policy_change(self, policy: Policy) -> None:
        """A reloaded policy may name new inbound domains: their queues exist before the
        receiving server (which reads the live policy) accepts mail for them."""
        task = asyncio.create_task(self.declare(policy))
        self._declaring.add(task)
        task.add_done_callback(self._declaring.discard)

    async def declare(self, policy: Policy) -> None:
        """Declare every inbound endpoint's queue (the reports service declares them too)."""
        if not policy.inbound:
            return
        channel = await self.broker.connection.channel()
        try:
            for entry in policy.inbound:
                endpoint = inbound_endpoint(entry)
                await self.broker.topology.declare_webhook_queue(channel, endpoint.id)
                logger.info("%s: inbound mail for %s", endpoint.queue, entry.domain)
        finally:
            await channel.close()

    async def publish(
        self,
        endpoint: Endpoint,
        envelope_from: str,
        recipients: list[str],
        content: bytes,
        *,
        client_ip: str = "",
        helo: str = "",
    ) -> str:
        """Publish one mail for one endpoint; returns its id once RabbitMQ confirmed it."""
        now = time.time()
        mail = webhooks_pb2.InboundMail(
            mail_id=new_id(),
            received_at=to_timestamp(now),
            domain=endpoint.owner,
            envelope_from=envelope_from,
            recipients=recipients,
            client_ip=client_ip,
            helo=helo,
            content=content,
        )
        batch = webhooks_pb2.WebhookBatch(created=to_timestamp(now), inbound=mail)
        await self.broker.publish(endpoint.routing_key, batch)
        logger.info(
            "%s: inbound mail for %s (%d bytes) queued for %s",
            mail.mail_id,
            ", ".join(recipients),
            len(content),
            endpoint.label,
        )
        return mail.mail_id
