"""Sending the weekly summaries: once a week per server, whatever restarts and replicas.

**Once per week.** Each summary sent is a row of ``weekly_summaries`` (server, due time),
written once its deliveries were confirmed by RabbitMQ; a summary is sent when its due time
has passed, no row says it went, and it is at most ``LATE_LIMIT`` late (a process that was
down at the time sends it when it is back; a summary more than a day late is skipped rather
than sent days afterwards, e.g. on a first deployment). A process that dies between the
publish and the row sends that summary again when it is back: at least once, SMTP's norm.

**Several replicas.** Only one sends: the replica whose consumer of
``reports.summary.owner`` (a single-active-consumer queue) is the active one. Every replica
puts a token there every minute; only the active consumer ever receives one, and it is the
sender from then until its channel closes, when the broker makes the next replica active
(it learns so from the next token, within a minute).

The mail is published as accepted deliveries (``postline.common.submission``, as ingress
does), so the scheduler takes it like any other: it has a delivery log, events and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.exceptions import AMQPError
from google.protobuf import empty_pb2
from prometheus_client import Counter

from postline.common.addresses import parse_address
from postline.common.broker import Broker, BrokerUnavailable
from postline.common.broker.topology import EXCHANGE
from postline.common.policy import Policy, PolicySource
from postline.common.policy.model import Server, WeeklySummary
from postline.common.runtime import within
from postline.common.semconv import METRIC_WEEKLY_SUMMARIES, SERVER, SPAN_WEEKLY_SUMMARY
from postline.common.submission import Submission, submit
from postline.common.telemetry import tracer
from postline.reports.store import Store
from postline.reports.summary.figures import WeekFigures, week_figures
from postline.reports.summary.render import summary_mail
from postline.reports.summary.schedule import latest_due, week_before

logger = logging.getLogger(__name__)

SENT = Counter(METRIC_WEEKLY_SUMMARIES, "weekly summaries sent", ["server"])

LOCK_QUEUE = "reports.summary.owner"
TABLE = "postline.weekly_summaries"
LATE_LIMIT = timedelta(days=1)
CHECK_SECONDS = 30.0
TOKEN_SECONDS = 60.0


@dataclass(frozen=True)
class Sent:
    server: str
    due: datetime
    message_id: str
    delivery_ids: list[str]
    this_week: WeekFigures
    previous_week: WeekFigures


class WeeklySummaries:
    def __init__(
        self,
        broker: Broker,
        store: Store,
        policy: PolicySource,
        *,
        clock: Callable[[], float] = time.time,
        check_seconds: float = CHECK_SECONDS,
        token_seconds: float = TOKEN_SECONDS,
    ) -> None:
        self.broker = broker
        self.store = store
        self._policy = policy
        self.clock = clock
        self.check_seconds = check_seconds
        self.token_seconds = token_seconds
        self.leader = False
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def policy(self) -> Policy:
        """The policy as it is now: a reloaded file's summaries (recipients, day, time) apply
        at the next check; a first summary in a process that had none needs a restart."""
        return self._policy()

    @property
    def configured(self) -> bool:
        return any(s.weekly_summary is not None for s in self.policy.servers.values())

    async def start(self) -> None:
        if not self.configured:
            return
        self._channel = await self.broker.connection.channel()
        self._channel.close_callbacks.add(self._lost)
        await self._channel.set_qos(prefetch_count=1)
        arguments: dict[str, Any] = {"x-single-active-consumer": True, "x-max-length": 1}
        queue = await self._channel.declare_queue(LOCK_QUEUE, durable=True, arguments=arguments)
        await queue.bind(EXCHANGE, routing_key=LOCK_QUEUE)
        await queue.consume(self._on_token)
        self._task = asyncio.create_task(self._run(), name="weekly-summaries")

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(AMQPError, RuntimeError, ConnectionError):
                await self._channel.close()
        self.leader = False

    def _lost(self, *_: object) -> None:
        if self.leader:
            logger.info("weekly summaries: no longer the sending replica")
        self.leader = False

    async def _on_token(self, message: AbstractIncomingMessage) -> None:
        with contextlib.suppress(AMQPError, RuntimeError, ConnectionError):
            await message.ack()
        if not self.leader:
            logger.info("weekly summaries: this replica sends them")
        self.leader = True
        self._wake.set()

    async def _run(self) -> None:
        next_token = 0.0
        while not self._stop.is_set():
            now = self.clock()
            if now >= next_token:
                next_token = now + self.token_seconds
                with contextlib.suppress(BrokerUnavailable):
                    await self.broker.publish(LOCK_QUEUE, empty_pb2.Empty())
            if self.leader:
                try:
                    await self.send_due(now)
                except Exception:
                    logger.exception("weekly summaries: sending failed; trying again later")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await within(self._wake.wait(), self.check_seconds)

    async def send_due(self, now: float) -> list[Sent]:
        """Send every summary that is due and was not sent (whether or not this replica is the
        sending one: callers check ``leader``)."""
        at = datetime.fromtimestamp(now, UTC)
        sent = []
        for name, server in self.policy.servers.items():
            summary = server.weekly_summary
            if summary is None:
                continue
            due = latest_due(summary, at)
            if at - due > LATE_LIMIT or await self.was_sent(name, due):
                continue
            sent.append(await self.send(name, server, summary, due, at))
        return sent

    async def was_sent(self, server: str, due: datetime) -> bool:
        rows = await self.store.query(
            f"SELECT count() AS n FROM {TABLE} FINAL "
            "WHERE server = {server:String} AND due = {due:DateTime('UTC')}",
            {"server": server, "due": due},
        )
        return bool(rows and int(rows[0]["n"]))

    async def send(
        self, name: str, server: Server, summary: WeeklySummary, due: datetime, now: datetime
    ) -> Sent:
        with tracer(__name__).start_as_current_span(SPAN_WEEKLY_SUMMARY) as span:
            span.set_attribute(SERVER, name)
            this = await week_figures(self.store, name, week_before(summary, due))
            previous = await week_figures(self.store, name, week_before(summary, due, 2))
            domain = str(server.return_path_domain)
            message_id = f"<weekly-summary.{name}.{due:%Y%m%dT%H%M}Z@{domain}>"
            content = summary_mail(
                server=name,
                timezone=summary.timezone.key,
                sender=server.notices_from,
                recipients=list(summary.to),
                message_id=message_id,
                this=this,
                previous=previous,
                now=now,
            )
            submission = Submission(
                server=name,
                api_user="",
                envelope_from=parse_address(server.notices_from),
                recipients=[parse_address(address) for address in summary.to],
                content=content,
                client_ip="",
                accepted_at=now.timestamp(),
            )
            accepted = await submit(self.broker, submission, domain)
            await self.store.write(
                lambda c: c.insert(
                    TABLE,
                    [[name, due, now, message_id, list(summary.to)]],
                    column_names=("server", "due", "sent_at", "message_id", "recipients"),
                )
            )
        SENT.labels(name).inc()
        logger.info(
            "%s weekly summary of %s to %s sent (%s)",
            name,
            this.week.first_day,
            ", ".join(summary.to),
            message_id,
        )
        return Sent(
            name, due, message_id, [d.delivery_id for d in accepted.deliveries], this, previous
        )
