"""Who a bounce mail is for: the deliveries Postline made, as their `queued` events said.

A bounce mail may come days after its delivery succeeded, and its VERP address names only
the delivery id; the error-log row needs the delivery's sender, recipient, subject, api data
and server. So the bounce service keeps its own record of each delivery, from the `queued`
event ingress publishes (queue ``bounce.deliveries``, bound to ``event.delivery``): one row
per delivery, kept as long as reports keep theirs (``retention_days``). Events come alone
(``DeliveryEvent``) or, under load, several to a broker message (``DeliveryEvents``); the
queued ones of a message are written in one insert. Other events add nothing a bounce needs
(the return path comes with the bounce itself): they travel on ``event.delivery.outcome``, which
this queue is not bound to, and those a producer of an older release still sends here are acked
without a write.

Writes are grouped: an insert starts at most every two seconds (``WRITE_EVERY``); the rows of
every message that arrives meanwhile wait and go in it, so under load one insert carries many
messages (an insert costs chdb about 8 ms of CPU whatever its size, and makes a part to merge:
at 300 deliveries a second, one insert a second cost the process 19-24 ms of CPU a second, one
every two seconds 15-17); each message is acked once the insert with its rows returned. A
bounce looked up meanwhile finds the rows still waiting for their insert too: a bounce can come
within a second of its delivery (a destination that accepts, then bounces at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from postline.bounce.store import Store
from postline.common.broker.consumer import MessageMeta, MessageTypes
from postline.common.timeutil import from_timestamp, to_timestamp
from postline.v1 import delivery_pb2, events_pb2

logger = logging.getLogger(__name__)

TABLE = "postline.bounce_deliveries"
COLUMNS = (
    "delivery_id",
    "message_id",
    "header_message_id",
    "server",
    "api_user",
    "envelope_from",
    "recipient",
    "subject",
    "api_data",
    "accepted_at",
    "trace_id",
)

# What ``bounce.deliveries`` carries: one event, or several published together.
MESSAGE_TYPES: MessageTypes = {
    events_pb2.DeliveryEvent.DESCRIPTOR.full_name: events_pb2.DeliveryEvent,
    events_pb2.DeliveryEvents.DESCRIPTOR.full_name: events_pb2.DeliveryEvents,
}


@dataclass(frozen=True)
class KnownDelivery:
    delivery_id: str
    message_id: str
    header_message_id: str
    server: str
    api_user: str
    envelope_from: str
    recipient: str
    subject: str
    api_data: str
    accepted_at: float
    trace_id: str

    def as_accepted(self) -> delivery_pb2.AcceptedDelivery:
        """The delivery in the form the event builders take."""
        return delivery_pb2.AcceptedDelivery(
            delivery_id=self.delivery_id,
            message_id=self.message_id,
            header_message_id=self.header_message_id,
            server=self.server,
            api_user=self.api_user,
            envelope_from=self.envelope_from,
            recipient=self.recipient,
            recipient_domain=self.recipient.rpartition("@")[2].lower(),
            subject=self.subject,
            api_data=self.api_data,
            accepted_at=to_timestamp(self.accepted_at),
        )


def _row(event: events_pb2.DeliveryEvent) -> list[object]:
    accepted = event.accepted_at if event.HasField("accepted_at") else event.at
    return [
        event.delivery_id,
        event.message_id,
        event.header_message_id,
        event.server,
        event.api_user,
        event.envelope_from,
        event.recipient,
        event.subject,
        event.api_data,
        datetime.fromtimestamp(from_timestamp(accepted), UTC),
        event.trace_id,
    ]


def _known(row: dict[str, object]) -> KnownDelivery:
    accepted = row["accepted_at"]
    accepted_at = 0.0
    if isinstance(accepted, datetime):
        accepted_at = (accepted if accepted.tzinfo else accepted.replace(tzinfo=UTC)).timestamp()
    values = {k: str(row[k]) for k in COLUMNS if k != "accepted_at"}
    return KnownDelivery(**values, accepted_at=accepted_at)


# Messages of bounce.deliveries taken at once: what waits for the next insert.
PREFETCH = 500
# At most one insert every two seconds (sooner when this many rows wait).
WRITE_EVERY = 2.0
WRITE_ROWS = 5000


class Deliveries:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._rows: list[list[object]] = []
        self._writing: list[list[object]] = []  # the rows of the insert in progress
        self._written: asyncio.Future[None] | None = None  # the next insert's outcome
        self._writer: asyncio.Task[None] | None = None
        self._last_write = 0.0

    async def on_event(
        self,
        message: events_pb2.DeliveryEvent | events_pb2.DeliveryEvents,
        meta: MessageMeta,
    ) -> None:
        events = message.events if isinstance(message, events_pb2.DeliveryEvents) else [message]
        await self.record([e for e in events if e.status == events_pb2.DELIVERY_STATUS_QUEUED])

    async def record(self, events: Sequence[events_pb2.DeliveryEvent]) -> None:
        """One row per queued delivery, written with whatever else waits (one insert); returns
        once the insert carrying them returned."""
        if not events:
            return
        self._rows.extend(_row(event) for event in events)
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
        written = self._written
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        await asyncio.shield(written)

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while self._rows:
            wait = self._last_write + WRITE_EVERY - loop.time()
            while wait > 0 and len(self._rows) < WRITE_ROWS:
                await asyncio.sleep(min(wait, 0.05))
                wait = self._last_write + WRITE_EVERY - loop.time()
            self._last_write = loop.time()
            rows, self._rows = self._rows, []
            written, self._written = self._written, None
            assert written is not None
            self._writing = rows
            try:
                await self.store.insert(TABLE, rows, COLUMNS)
            except asyncio.CancelledError:
                written.cancel()
                raise
            except Exception as exc:
                written.set_exception(exc)
            else:
                written.set_result(None)
            finally:
                self._writing = []

    def _pending(self, column: str, value: str) -> list[dict[str, object]]:
        """The rows not yet written (waiting, or in the insert in progress) whose ``column``
        is ``value``, newest first; only those are made into mappings."""
        index = COLUMNS.index(column)
        return [
            dict(zip(COLUMNS, row, strict=True))
            for row in reversed([*self._writing, *self._rows])
            if row[index] == value
        ]

    async def by_id(self, delivery_id: str) -> KnownDelivery | None:
        if pending := self._pending("delivery_id", delivery_id):
            return _known(pending[0])
        rows = await self.store.query(
            f"SELECT * FROM {TABLE} FINAL WHERE delivery_id = {{id:String}} LIMIT 1",
            {"id": delivery_id},
        )
        return _known(rows[0]) if rows else None

    async def by_message_id(self, header_message_id: str, recipient: str) -> KnownDelivery | None:
        """The delivery of a returned message (its Message-ID header) to one recipient."""
        pending = self._pending("header_message_id", header_message_id)
        exact = [r for r in pending if str(r["recipient"]).lower() == recipient.lower()]
        if exact:
            return _known(exact[0])
        rows = await self.store.query(
            f"SELECT * FROM {TABLE} FINAL WHERE header_message_id = {{mid:String}} "
            "ORDER BY lower(recipient) = {rcpt:String} DESC, accepted_at DESC LIMIT 2",
            {"mid": header_message_id, "rcpt": recipient.lower()},
        )
        if not rows:
            return None
        first = _known(rows[0])
        # Several recipients share a Message-ID: only an exact recipient match is certain.
        if len(rows) > 1 and first.recipient.lower() != recipient.lower():
            return None
        return first
