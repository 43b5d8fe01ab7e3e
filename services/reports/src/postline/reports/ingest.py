"""Events into ClickHouse as the broker delivered them: protobuf bytes, one insert per kind.

Reports does not decode events. A broker message holds one event (``DeliveryEvent``,
``ErrorClassified``) or several (``DeliveryEvents``, ``ErrorEvents``: field 1, repeated). The
bytes of a batch message are a ClickHouse ``ProtobufList`` envelope, and envelopes concatenate
into one (repeated fields merge), so a whole batch of messages becomes one insert of the bytes
received, with a single event wrapped as a one-row envelope. ClickHouse parses them with the
schema sent along (made from the contracts' descriptors) into ``*_events_input`` tables
(engine Null) whose materialized views make the rows (migration 0005).

Each insert carries a deduplication token made of its bytes: a batch retried after a failure
(the same messages, e.g. the error insert failed after the delivery insert was written) is
dropped by ClickHouse, in the table and in the rollups fed by it. Rows also carry their event
id, so an event re-delivered in another batch merges away in the logs (ReplacingMergeTree).

An event no row can be made of fails its insert before anything is written; then, and only
then, the batch is decoded here to find the messages at fault (:class:`PoisonEvents`).

An insert that fails reading stored data (a broken part, e.g. one a merge left empty while the
disk was full: ``postline.common.clickhouse.broken_parts``) would fail the same way for ever:
the parts of the tables its view reads that CHECK TABLE refuses are detached (kept on disk),
and the insert is sent once more at once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

from clickhouse_connect.driver.client import Client
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from prometheus_client import Counter

from postline.common.clickhouse.broken_parts import (
    BrokenPart,
    detach,
    find_broken,
    is_corruption,
)
from postline.common.semconv import METRIC_BROKEN_PARTS, METRIC_INGESTED
from postline.reports.journal import Insert, Journal, key_of
from postline.reports.store import Store
from postline.v1 import events_pb2

logger = logging.getLogger(__name__)

INGESTED = Counter(METRIC_INGESTED, "events written to ClickHouse", ["kind"])
BROKEN_PARTS = Counter(METRIC_BROKEN_PARTS, "broken ClickHouse parts detached", ["table"])

# After a check that found no broken part, read errors start no other for this long (CHECK
# TABLE reads the whole table).
CHECK_AGAIN_AFTER = 300.0

# A broker message's x-postline-type and its body, as received.
Raw = tuple[str, bytes]

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_ENUM: "int32",  # the same varint on the wire
}


@cache
def protobuf_schema(descriptor: Descriptor) -> str:
    """A self-contained proto3 schema of one event message for ClickHouse's Protobuf input.

    Timestamps become a local ``Timestamp`` (same wire format, no import for the server to
    find) and enums ``int32``; the field numbers are the contract's, so the schema follows the
    contract as it is generated."""
    fields = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            nested = field.message_type
            if nested is None or nested.full_name != "google.protobuf.Timestamp":
                raise ValueError(f"{descriptor.name}.{field.name}: unsupported message field")
            kind = "Timestamp"
        else:
            kind = _SCALARS[field.type]
        fields.append(f"  {kind} {field.name} = {field.number};")
    return (
        'syntax = "proto3";\n'
        "message Timestamp { int64 seconds = 1; int32 nanos = 2; }\n"
        f"message {descriptor.name} {{\n" + "\n".join(fields) + "\n}\n"
    )


@dataclass(frozen=True)
class Kind:
    name: str  # metric label
    table: str  # the Null input table of migration 0005
    reads: str  # the table its view reads (the deduplication lookup of migration 0007)
    message: type[ProtoMessage]  # one event
    batch: type[ProtoMessage]  # several (field 1, repeated)

    def settings(self, schema_dir: Path | None) -> dict[str, str]:
        """How ClickHouse finds the schema: sent with the insert, or (the embedded engine,
        which would cache a sent schema in the working directory) a file written here."""
        descriptor = self.message.DESCRIPTOR
        schema = protobuf_schema(descriptor)
        if schema_dir is None:
            return {
                "format_schema_source": "string",
                "format_schema": schema,
                "format_schema_message_name": descriptor.name,
            }
        schema_dir.mkdir(parents=True, exist_ok=True)
        path = schema_dir / f"{descriptor.full_name}.proto"
        if not path.exists() or path.read_text() != schema:
            path.write_text(schema)
        return {"format_schema": f"{path}:{descriptor.name}"}


DELIVERY = Kind(
    "delivery",
    "postline.delivery_events_input",
    "postline.delivery_events",
    events_pb2.DeliveryEvent,
    events_pb2.DeliveryEvents,
)
ERROR = Kind(
    "error",
    "postline.error_events_input",
    "postline.error_log",
    events_pb2.ErrorClassified,
    events_pb2.ErrorEvents,
)
KINDS = (DELIVERY, ERROR)
for _kind in KINDS:
    BROKEN_PARTS.labels(_kind.reads)  # from 0, so that the first one shows as an increase

# x-postline-type -> (kind, True for a batch message)
TYPES: dict[str, tuple[Kind, bool]] = {
    **{kind.message.DESCRIPTOR.full_name: (kind, False) for kind in KINDS},
    **{kind.batch.DESCRIPTOR.full_name: (kind, True) for kind in KINDS},
}

DELIVERY_STATUSES = frozenset(
    {
        events_pb2.DELIVERY_STATUS_QUEUED,
        events_pb2.DELIVERY_STATUS_DEFERRED,
        events_pb2.DELIVERY_STATUS_SUCCEEDED,
        events_pb2.DELIVERY_STATUS_FAILED,
    }
)


class PoisonEvents(Exception):
    """Messages of a batch no row can be made of: ``{index in the batch: why}``."""

    def __init__(self, reasons: dict[int, str]) -> None:
        super().__init__(f"{len(reasons)} message(s) refused")
        self.reasons = reasons


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint of a length."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    """The varint at ``position`` and the position after it."""
    value = shift = 0
    while True:
        if position >= len(data):
            raise DecodeError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


def envelope_rows(body: bytes) -> int:
    """How many events a batch message holds (its field-1 entries), without decoding them."""
    count = position = 0
    end = len(body)
    while position < end:
        if body[position] != 0x0A:  # field 1, length-delimited: the only field of a batch
            raise DecodeError("not an event batch")
        length, position = read_varint(body, position + 1)
        position += length
        count += 1
    if position != end:
        raise DecodeError("truncated event batch")
    return count


def envelope(bodies: Sequence[tuple[bool, bytes]]) -> bytes:
    """One ProtobufList envelope (length-prefixed) of batch bodies and single events."""
    parts = [body if batch else b"\x0a" + varint(len(body)) + body for batch, body in bodies]
    data = b"".join(parts)
    return varint(len(data)) + data


def check(event: ProtoMessage) -> None:
    """Why no row can be made of an event (raises DecodeError), as migration 0005 refuses it."""
    if not getattr(event, "event_id", ""):
        raise DecodeError("event without event_id")
    if isinstance(event, events_pb2.DeliveryEvent):
        if event.status not in DELIVERY_STATUSES:
            raise DecodeError(f"event {event.event_id}: no delivery status")
        if not event.delivery_id:
            raise DecodeError(f"event {event.event_id}: no delivery_id")
        if event.at.seconds <= 0:
            raise DecodeError(f"event {event.event_id}: no time")
    elif isinstance(event, events_pb2.ErrorClassified) and event.created.seconds <= 0:
        raise DecodeError(f"event {event.event_id}: no time")


def events_of(raw: Raw) -> Iterator[ProtoMessage]:
    """Decode a message (the slow path: only to find what a failed insert refused)."""
    kind, batch = TYPES[raw[0]]
    if batch:
        yield from kind.batch.FromString(raw[1]).events  # type: ignore[attr-defined]
    else:
        yield kind.message.FromString(raw[1])


def find_poison(raws: Sequence[Raw]) -> dict[int, str]:
    """The messages of a batch ``prepare`` accepted (known types) whose events ClickHouse
    refuses."""
    reasons = {}
    for index, raw in enumerate(raws):
        try:
            for event in events_of(raw):
                check(event)
        except DecodeError as exc:
            reasons[index] = str(exc) or "undecodable"
    return reasons


def insert_token(table: str, data: bytes) -> str:
    return hashlib.blake2b(table.encode() + b"\0" + data, digest_size=16).hexdigest()


def refused_in(inserts: Sequence[Insert]) -> str | None:
    """Why ClickHouse refuses one of these inserts' events, if it does (None: it does not)."""
    kinds = {kind.table: kind for kind in KINDS}
    for table, data in inserts:
        kind = kinds.get(table)
        if kind is None:
            return f"no input table {table!r}"
        try:
            length, position = read_varint(data, 0)
            if position + length != len(data):
                raise DecodeError("truncated envelope")
            for event in kind.batch.FromString(data[position:]).events:  # type: ignore[attr-defined]
                check(event)
        except DecodeError as exc:
            return str(exc) or "undecodable"
    return None


@dataclass
class Prepared:
    """A batch sorted by kind: the bytes of each insert and its number of events."""

    inserts: list[tuple[Kind, bytes, int]]

    @property
    def events(self) -> int:
        return sum(count for _, _, count in self.inserts)


def prepare(raws: Sequence[Raw]) -> Prepared:
    """Group a batch by kind; raises PoisonEvents for messages of no known type or shape."""
    grouped: dict[str, list[tuple[bool, bytes]]] = {}
    counts: dict[str, int] = {}
    refused: dict[int, str] = {}
    for index, (name, body) in enumerate(raws):
        found = TYPES.get(name)
        if found is None:
            refused[index] = f"unexpected message type {name!r}"
            continue
        kind, batch = found
        try:
            rows = envelope_rows(body) if batch else 1
        except DecodeError as exc:
            refused[index] = f"{name}: {exc or 'truncated'}"
            continue
        grouped.setdefault(kind.name, []).append((batch, body))
        counts[kind.name] = counts.get(kind.name, 0) + rows
    if refused:
        raise PoisonEvents(refused)
    return Prepared(
        [
            (kind, envelope(grouped[kind.name]), counts[kind.name])
            for kind in KINDS
            if kind.name in grouped
        ]
    )


class Ingest:
    def __init__(self, store: Store, journal: Journal | None = None) -> None:
        self.store = store
        self.journal = journal
        local = store.local_path
        schema_dir = local / "format_schemas" if local is not None else None
        self.settings = {kind.table: kind.settings(schema_dir) for kind in KINDS}
        self._checked_clean: float | None = None  # when a check last found no broken part
        self._broken: list[BrokenPart] = []  # found, not detached yet (a full disk refuses it)

    async def write(self, raws: Sequence[Raw]) -> int:
        """Write one batch of broker messages; returns the number of events written.

        Returns once ClickHouse accepted every row; raises :class:`PoisonEvents` naming the
        messages no row can be made of (nothing of theirs was written), or what ClickHouse
        raised (the whole batch is to be retried). Inserts an earlier failure or process left
        unfinished in the journal are completed first."""
        prepared = prepare(raws)
        inserts = [(kind.table, data) for kind, data, _ in prepared.inserts]
        key = None
        if self.journal is not None:
            key = key_of(inserts)
            await self._finish_unfinished(besides=key)
            self.journal.begin(inserts, key)
        try:
            await self._send(inserts)
        except Exception as exc:
            # Parsing and the checks are ClickHouse's; find out here whether the data is at
            # fault (a deterministic refusal) or ClickHouse (retry the same batch).
            refused = find_poison(raws)
            if refused:
                if key is not None and self.journal is not None:
                    self.journal.end(key)  # refused before anything was written
                raise PoisonEvents(refused) from exc
            raise
        if key is not None and self.journal is not None:
            self.journal.end(key)
        for kind, _, count in prepared.inserts:
            INGESTED.labels(kind.name).inc(count)
        return prepared.events

    async def _finish_unfinished(self, besides: str) -> None:
        """Send again, with their own tokens, the inserts that began and did not end."""
        assert self.journal is not None
        for entry in self.journal.unfinished(besides=besides):
            try:
                await self._send(entry.inserts)
            except Exception:
                refused = refused_in(entry.inserts)
                if not refused:
                    raise  # ClickHouse's failure: the entry waits for the next try
                # Left by a process that died before it could tell: nothing of it was
                # written, and its events come again from RabbitMQ, where they are sorted out.
                logger.error(
                    "%s: an unfinished insert refused (%s) is dropped", entry.path.name, refused
                )
                self.journal.end(entry.key)
                continue
            self.journal.end(entry.key)
            logger.info(
                "%s: an insert that did not end is complete now (%d bytes sent again)",
                entry.path.name,
                sum(len(data) for _, data in entry.inserts),
            )

    async def _send(self, inserts: Sequence[Insert]) -> None:
        """Insert; if the insert met a broken part, detach the broken parts and insert again
        (the same token: what the first try wrote is not written twice)."""
        try:
            await self.store.write(partial(self._insert, inserts=inserts))
        except Exception as exc:
            if not is_corruption(exc) or not await self._detach_broken(inserts):
                raise
            await self.store.write(partial(self._insert, inserts=inserts))

    async def _detach_broken(self, inserts: Sequence[Insert]) -> bool:
        """Detach the broken parts of the tables these inserts read; whether any was.

        Parts found before and not detached yet are detached without a new check."""
        if not self._broken:
            now = time.monotonic()
            if self._checked_clean is not None and now - self._checked_clean < CHECK_AGAIN_AFTER:
                return False
            reads = {kind.table: kind.reads for kind in KINDS}
            tables = sorted({reads[table] for table, _ in inserts if table in reads})
            logger.warning("%s: an insert failed reading stored data; checking", ", ".join(tables))
            try:
                self._broken = await self.store.run(partial(find_broken, tables=tables))
            except Exception:
                logger.exception("%s: the check for broken parts failed", ", ".join(tables))
                return False
            self._checked_clean = None if self._broken else now
            if not self._broken:
                logger.warning("%s: no broken part found", ", ".join(tables))
                return False
        try:
            detached, self._broken = await self.store.run(partial(detach, parts=self._broken))
        except Exception:
            logger.exception("broken parts not detached")
            return False
        for part in detached:
            BROKEN_PARTS.labels(part.table).inc()
        return bool(detached)

    def _insert(self, client: Client, inserts: Sequence[Insert]) -> None:
        for table, data in inserts:
            client.raw_insert(
                table,
                insert_block=data,
                fmt="ProtobufList",
                settings={
                    **self.settings[table],
                    "insert_deduplication_token": insert_token(table, data),
                    # the rollups and the delivery log are fed side by side
                    "parallel_view_processing": 1,
                    # a synchronous insert (the embedded engine defaults to async ones): the
                    # batch is acked only when its rows are in the tables
                    "async_insert": 0,
                },
            )
