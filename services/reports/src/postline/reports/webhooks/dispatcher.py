"""The webhooks of a reports process: the fan-out, one poster per endpoint, the attempt log.

Started by ``__main__`` beside the ingest, on channels of their own. Every endpoint's secret
is read at start: a missing or malformed one stops the service with the policy key named.
Endpoints too are read at start (each has its queue, consumer and key): a reloaded policy that
adds, removes or changes one is logged, and applies when the service restarts.
"""

from __future__ import annotations

import contextlib
import logging

import httpx
from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq.exceptions import AMQPError

from postline.common.broker import Broker
from postline.common.broker.consumer import consume
from postline.common.policy import Policy
from postline.common.policy.secrets import SecretError
from postline.common.webhooks import SignatureKey, event_endpoints
from postline.common.webhooks.endpoints import inbound_endpoints
from postline.reports.store import Store
from postline.reports.webhooks.attempts import AttemptLog
from postline.reports.webhooks.events import SOURCE_TYPES
from postline.reports.webhooks.fanout import Fanout
from postline.reports.webhooks.poster import EndpointPoster, PostSettings

logger = logging.getLogger(__name__)

FANOUT_PREFETCH = 32


class Webhooks:
    def __init__(
        self, broker: Broker, store: Store, policy: Policy, settings: PostSettings
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.log = AttemptLog(store)
        self.events = event_endpoints(policy)
        self.inbound = inbound_endpoints(policy)
        self.fanout = Fanout(broker, self.events, settings.batch_size)
        self.posters: list[EndpointPoster] = []
        self._client: httpx.AsyncClient | None = None
        self._channel: AbstractChannel | None = None
        self._fanout: tuple[AbstractQueue, str] | None = None

    def on_policy_change(self, policy: Policy) -> None:
        before = {e.id for e in (*self.events, *self.inbound)}
        after = {e.id for e in (*event_endpoints(policy), *inbound_endpoints(policy))}
        if before != after:
            logger.warning(
                "the reloaded policy changes the webhook endpoints (%d added, %d removed): "
                "they apply when this reports process restarts",
                len(after - before),
                len(before - after),
            )

    async def start(self) -> None:
        endpoints = [*self.events, *self.inbound]
        try:
            keys = {endpoint.id: SignatureKey.resolve(endpoint.secret) for endpoint in endpoints}
        except SecretError as exc:
            raise SystemExit(f"webhooks: {exc}") from None
        self._client = httpx.AsyncClient(follow_redirects=False)
        self.log.start()
        for endpoint in endpoints:
            poster = EndpointPoster(
                endpoint, keys[endpoint.id], self.broker, self._client, self.log, self.settings
            )
            await poster.start()
            self.posters.append(poster)
            logger.info("%s: webhook %s (%s)", endpoint.queue, endpoint.label, endpoint.kind)
        # Declared on the channel that consumes it: a reconnected (robust) channel declares,
        # binds and consumes it again by itself.
        self._channel = await self.broker.connection.channel()
        await self._channel.set_qos(prefetch_count=FANOUT_PREFETCH)
        queue = await self.broker.topology.declare_webhook_fanout(
            self._channel, self.fanout.routing_keys()
        )
        tag = await queue.consume(consume(queue, SOURCE_TYPES, self.fanout.handle))
        self._fanout = (queue, tag)

    async def stop(self) -> None:
        if self._fanout is not None:
            queue, tag = self._fanout
            with contextlib.suppress(AMQPError, RuntimeError, ConnectionError):
                await queue.cancel(tag)
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(AMQPError, RuntimeError, ConnectionError):
                await self._channel.close()
        for poster in self.posters:
            await poster.stop()
        await self.log.stop()
        if self._client is not None:
            await self._client.aclose()
