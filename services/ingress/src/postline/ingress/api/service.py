"""The send API's two operations, behind both doors (HTTP JSON and gRPC).

A door authenticates, parses its request into the shared models and calls `SendApi`; every
rule (checks, limits, idempotency, composing, publishing) lives here or below, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from pydantic import BaseModel

from postline.common.broker import Broker
from postline.common.broker.connection import BrokerUnavailable
from postline.common.credentials import Principal
from postline.common.policy import Policy, PolicySource, Server
from postline.common.semconv import API_USER, MESSAGE_ID, SERVER, SPAN_API_SEND
from postline.common.telemetry import tracer
from postline.common.throttle import AuthThrottle
from postline.ingress import metrics
from postline.ingress.api import errors
from postline.ingress.api.auth import Authenticator
from postline.ingress.api.checks import (
    BulkItem,
    Outgoing,
    Template,
    check_attachments_fit,
    check_bulk,
    check_raw,
    check_recipients,
    check_send_dsn,
    check_server,
    check_size,
    check_template,
    fill,
    size_field,
)
from postline.ingress.api.errors import invalid, unavailable
from postline.ingress.api.models import (
    BulkRequest,
    BulkResponse,
    RecipientDelivery,
    SendRequest,
    SendResponse,
)
from postline.ingress.compose_mime import compose
from postline.ingress.idempotency import (
    IdempotencyKeyReused,
    IdempotencyStore,
    MemoryIdempotencyStore,
    Replay,
)
from postline.ingress.submission import Accepted, Submission, submit

logger = logging.getLogger(__name__)

A = TypeVar("A", bound=BaseModel)

IDEMPOTENCY_FIELD = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX = 255

# Bulk: messages in flight at once, and how many composed bytes to keep between checking
# every message's size and publishing it (beyond that a message is composed again).
BULK_CONCURRENCY = 64
BULK_MEMORY_BUDGET = 64 * 1024 * 1024


@dataclass(frozen=True)
class SendOutcome(Generic[A]):
    """What a send request came to: its answer, and whether it is an earlier one replayed."""

    answer: A
    replayed: bool = False  # the stored answer of an earlier request with the same key


class SendApi:
    def __init__(
        self,
        broker: Broker,
        policy: PolicySource,
        hostname: str,
        idempotency: IdempotencyStore | None = None,
        *,
        bulk_concurrency: int = BULK_CONCURRENCY,
        bulk_memory_budget: int = BULK_MEMORY_BUDGET,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.broker = broker
        self._policy = policy
        self.hostname = hostname
        self.idempotency = idempotency if idempotency is not None else MemoryIdempotencyStore()
        self.bulk_concurrency = bulk_concurrency
        self.bulk_memory_budget = bulk_memory_budget
        self.authenticator = Authenticator(policy, throttle)

    @property
    def policy(self) -> Policy:
        return self._policy()

    @property
    def max_message_size(self) -> int:
        return max(s.relay.max_message_size for s in self.policy.servers.values())

    async def authenticate(self, authorization: str | None, client_ip: str) -> Principal:
        return await self.authenticator.principal(authorization, client_ip)

    async def send(
        self,
        principal: Principal,
        request: SendRequest,
        *,
        client_ip: str,
        idempotency_key: str | None = None,
    ) -> SendOutcome[SendResponse]:
        server = check_server(request.server, principal, self.policy)
        return await self._once(
            principal,
            idempotency_key,
            _fingerprint("send", request),
            SendResponse,
            lambda: self._send(principal, server, request, client_ip),
        )

    async def send_bulk(
        self,
        principal: Principal,
        request: BulkRequest,
        *,
        client_ip: str,
        idempotency_key: str | None = None,
    ) -> SendOutcome[BulkResponse]:
        server = check_server(request.server, principal, self.policy)
        return await self._once(
            principal,
            idempotency_key,
            _fingerprint("bulk", request),
            BulkResponse,
            lambda: self._send_bulk(principal, server, request, client_ip),
        )

    # -- one message ----------------------------------------------------------------------

    async def _send(
        self, principal: Principal, server: Server, request: SendRequest, client_ip: str
    ) -> SendResponse:
        recipients = check_recipients(request.to, server)
        if request.raw is not None:
            outgoing = check_raw(request, recipients, server)
        else:
            template = check_template(request)
            check_attachments_fit(template, server)
            content = compose(template.draft(recipients), self.hostname)
            check_size(content, server, size_field(template))
            outgoing = Outgoing(template.envelope_from, recipients, content)
        outgoing = replace(outgoing, dsn=check_send_dsn(request, recipients))
        with tracer(__name__).start_as_current_span(SPAN_API_SEND):
            try:
                accepted = await self._submit(principal, outgoing, client_ip)
            except BrokerUnavailable as exc:
                logger.warning("%s API send not accepted: %s", client_ip, exc)
                raise unavailable("the queue is unavailable, try again later") from exc
        logger.info(
            "%s accepted from API user %s for %d recipients",
            accepted.message_id,
            principal.api_user,
            len(accepted.deliveries),
        )
        return _answer(accepted)

    # -- bulk -----------------------------------------------------------------------------

    async def _send_bulk(
        self, principal: Principal, server: Server, request: BulkRequest, client_ip: str
    ) -> BulkResponse:
        template = check_template(request)
        check_attachments_fit(template, server)
        items = check_bulk(request, template)
        contents = await self._compose_all(template, items, server)
        answers: list[SendResponse | None] = [None] * len(items)
        pending = iter(range(len(items)))

        async def worker() -> None:
            for i in pending:
                content = contents[i] or compose(fill(template, items[i]), self.hostname)
                contents[i] = None
                outgoing = Outgoing(
                    template.envelope_from, [items[i].recipient], content, [items[i].dsn]
                )
                # Each message is its own trace, as it would be had it come alone.
                with tracer(__name__).start_as_current_span(SPAN_API_SEND, context=Context()):
                    answers[i] = _answer(await self._submit(principal, outgoing, client_ip))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.bulk_concurrency, len(items))):
                    group.create_task(worker())
        except* BrokerUnavailable as failed:
            done = sum(a is not None for a in answers)
            logger.warning(
                "%s API bulk of %d failed after %d accepted: %s",
                client_ip,
                len(items),
                done,
                failed.exceptions[0],
            )
            raise unavailable(
                f"the queue is unavailable, try again later ({done} of {len(items)} messages "
                "were accepted before it failed and may be sent again by a retry)"
            ) from None
        logger.info("bulk from API user %s accepted: %d messages", principal.api_user, len(items))
        return BulkResponse(messages=[a for a in answers if a is not None])

    async def _compose_all(
        self, template: Template, items: list[BulkItem], server: Server
    ) -> list[bytes | None]:
        """Check every message's size before sending any; keep what fits the memory budget."""
        kept = 0
        contents: list[bytes | None] = []
        for i, item in enumerate(items):
            content = compose(fill(template, item), self.hostname)
            check_size(content, server, f"recipients[{i}]")
            if kept + len(content) <= self.bulk_memory_budget:
                kept += len(content)
                contents.append(content)
            else:
                contents.append(None)
            if i % 32 == 31:
                await asyncio.sleep(0)  # composing is CPU: let other requests in
        return contents

    # -- shared ---------------------------------------------------------------------------

    async def _submit(self, principal: Principal, outgoing: Outgoing, client_ip: str) -> Accepted:
        accepted = await submit(
            self.broker,
            Submission(
                server=principal.server,
                api_user=principal.api_user,
                envelope_from=outgoing.envelope_from,
                recipients=outgoing.recipients,
                content=outgoing.content,
                client_ip=client_ip,
                accepted_at=time.time(),
                dsn=outgoing.dsn if any(d is not None for d in outgoing.dsn) else (),
            ),
            self.hostname,
            self.policy,
        )
        _annotate(principal, accepted)
        metrics.ACCEPTED.labels(metrics.API).inc(len(accepted.deliveries))
        return accepted

    async def _once(
        self,
        principal: Principal,
        key: str | None,
        fingerprint: str,
        model: type[A],
        run: Callable[[], Awaitable[A]],
    ) -> SendOutcome[A]:
        """Run the request, or replay the answer of the first one with the same key."""
        if key is None:
            return SendOutcome(await run())
        check_idempotency_key(key)
        try:
            claim = await self.idempotency.claim(
                f"{principal.server}/{principal.api_user}", key, fingerprint
            )
        except IdempotencyKeyReused:
            raise invalid(
                errors.IDEMPOTENCY_KEY_REUSED,
                "this key was already used for a different request",
                IDEMPOTENCY_FIELD,
            ) from None
        if isinstance(claim, Replay):
            logger.info("API user %s: replaying the answer for key %s", principal.api_user, key)
            return SendOutcome(model.model_validate_json(claim.answer), replayed=True)
        try:
            answer = await run()
        except BaseException:
            await self.idempotency.release(claim)
            raise
        await self.idempotency.complete(claim, answer.model_dump_json().encode())
        return SendOutcome(answer)


def check_idempotency_key(key: str) -> None:
    if not 0 < len(key) <= IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise invalid(
            errors.INVALID_FIELD,
            f"an idempotency key is 1 to {IDEMPOTENCY_KEY_MAX} printable US-ASCII characters",
            IDEMPOTENCY_FIELD,
        )


def _fingerprint(operation: str, request: BaseModel) -> str:
    # Sorted keys: a retry that orders its JSON objects differently is still the same request.
    canonical = json.dumps(request.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(f"{operation}\0{canonical}".encode()).hexdigest()


def _answer(accepted: Accepted) -> SendResponse:
    return SendResponse(
        message_id=accepted.message_id,
        deliveries=[
            RecipientDelivery(recipient=d.recipient, delivery_id=d.delivery_id)
            for d in accepted.deliveries
        ],
    )


def _annotate(principal: Principal, accepted: Accepted) -> None:
    span = trace.get_current_span()
    span.set_attribute(MESSAGE_ID, accepted.message_id)
    span.set_attribute(SERVER, principal.server)
    span.set_attribute(API_USER, principal.api_user)
