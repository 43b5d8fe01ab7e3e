"""The suppression list (delivery blocking): stored in ClickHouse, every change published.

Per server, addresses lowercased. An unknown-user failure (error status 2) adds the address
when the server's policy enables blocking (``blocking.enabled``), for
``blocking.expire_after`` (0s: for good). Each add and remove is published as a
``SuppressionChange`` (routing key ``suppression.change``) so every scheduler replica keeps its
local copy current; a scheduler loads the whole list at start with ``Suppressions.List``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from postline.bounce.store import Store
from postline.common.addresses import address_key
from postline.common.broker import Broker
from postline.common.broker.topology import SUPPRESSION_KEY
from postline.common.timeutil import to_timestamp
from postline.v1 import events_pb2, suppression_pb2

logger = logging.getLogger(__name__)

TABLE = "postline.suppressions"
COLUMNS = (
    "server",
    "address",
    "reason",
    "delivery_id",
    "created",
    "expires_at",
    "removed",
    "version",
)
MAX_PAGE_SIZE = 10_000

# The latest row per (server, address) that is neither removed nor expired. Expired by this
# service's clock (``now_ms``), the clock that set ``expires_at``, not ClickHouse's: a
# database host whose clock is ahead would drop an entry before the schedulers do.
_LIVE = (
    f"SELECT server, address, reason, delivery_id, created, expires_at FROM {TABLE} FINAL "
    "WHERE removed = 0 "
    "AND (expires_at IS NULL OR expires_at > fromUnixTimestamp64Milli({now_ms:Int64}))"
)


def _now_ms(now: float | None) -> int:
    return round((time.time() if now is None else now) * 1000)


@dataclass(frozen=True)
class Entry:
    server: str
    address: str
    reason: str
    delivery_id: str
    created: float
    expires_at: float | None

    def to_proto(self) -> suppression_pb2.Suppression:
        item = suppression_pb2.Suppression(
            server=self.server,
            address=self.address,
            reason=self.reason,
            created=to_timestamp(self.created),
        )
        if self.expires_at is not None:
            item.expires_at.CopyFrom(to_timestamp(self.expires_at))
        return item


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _entry(row: dict[str, object]) -> Entry:
    return Entry(
        server=str(row["server"]),
        address=str(row["address"]),
        reason=str(row["reason"]),
        delivery_id=str(row["delivery_id"]),
        created=_epoch(row["created"]) or 0.0,  # type: ignore[arg-type]
        expires_at=_epoch(row["expires_at"]),  # type: ignore[arg-type]
    )


def _version() -> int:
    # Microseconds: two changes of one address never share a version in practice, and a
    # later change always wins the merge.
    return time.time_ns() // 1000


class SuppressionList:
    def __init__(self, store: Store, broker: Broker) -> None:
        self.store = store
        self.broker = broker

    async def check(self, server: str, address: str, *, now: float | None = None) -> Entry | None:
        rows = await self.store.query(
            f"{_LIVE} AND server = {{server:String}} AND address = {{address:String}} LIMIT 1",
            {"server": server, "address": address_key(address), "now_ms": _now_ms(now)},
        )
        return _entry(rows[0]) if rows else None

    async def list(
        self,
        server: str = "",
        contains: str = "",
        page: int = 1,
        page_size: int = 100,
        *,
        now: float | None = None,
    ) -> tuple[list[Entry], int]:
        """A page (from 1) of live entries, ordered by server and address, and their total."""
        page_size = max(1, min(page_size or 100, MAX_PAGE_SIZE))
        page = max(1, page)
        where = ""
        params: dict[str, object] = {"now_ms": _now_ms(now)}
        if server:
            where += " AND server = {server:String}"
            params["server"] = server
        if contains:
            where += " AND positionCaseInsensitive(address, {contains:String}) > 0"
            params["contains"] = contains
        total_rows = await self.store.query(f"SELECT count() AS n FROM ({_LIVE}{where})", params)
        rows = await self.store.query(
            f"{_LIVE}{where} ORDER BY server, address "
            f"LIMIT {page_size:d} OFFSET {(page - 1) * page_size:d}",
            params,
        )
        return [_entry(r) for r in rows], int(total_rows[0]["n"])

    async def add(
        self,
        server: str,
        address: str,
        reason: str,
        *,
        delivery_id: str = "",
        expire_after: float | None = None,
        now: float | None = None,
    ) -> Entry:
        """Add (or renew) a suppression, then publish the change (confirmed)."""
        at = time.time() if now is None else now
        expires = at + expire_after if expire_after else None
        entry = Entry(server, address_key(address), reason, delivery_id, at, expires)
        await self.store.insert(
            TABLE,
            [
                [
                    entry.server,
                    entry.address,
                    entry.reason,
                    entry.delivery_id,
                    datetime.fromtimestamp(at, UTC),
                    datetime.fromtimestamp(expires, UTC) if expires is not None else None,
                    0,
                    _version(),
                ]
            ],
            COLUMNS,
        )
        await self._publish(entry, events_pb2.SUPPRESSION_ACTION_ADD, at)
        logger.info("%s suppressed for server %s: %s", entry.address, server, reason)
        return entry

    async def remove(self, server: str, address: str, *, now: float | None = None) -> bool:
        """Remove a suppression; False when there was none. Publishes the change."""
        at = time.time() if now is None else now
        existing = await self.check(server, address, now=at)
        if existing is None:
            return False
        await self.store.insert(
            TABLE,
            [
                [
                    existing.server,
                    existing.address,
                    existing.reason,
                    existing.delivery_id,
                    datetime.fromtimestamp(existing.created, UTC),
                    None,
                    1,
                    _version(),
                ]
            ],
            COLUMNS,
        )
        await self._publish(existing, events_pb2.SUPPRESSION_ACTION_REMOVE, at)
        logger.info("%s no longer suppressed for server %s", existing.address, server)
        return True

    async def _publish(
        self, entry: Entry, action: events_pb2.SuppressionAction.ValueType, at: float
    ) -> None:
        change = events_pb2.SuppressionChange(
            server=entry.server,
            address=entry.address,
            action=action,
            reason=entry.reason,
            at=to_timestamp(at),
            delivery_id=entry.delivery_id,
        )
        if action == events_pb2.SUPPRESSION_ACTION_ADD and entry.expires_at is not None:
            change.expires_at.CopyFrom(to_timestamp(entry.expires_at))
        # Each scheduler replica reads the whole list at start: a change no replica hears now
        # (none running) is not lost, so its publish need not reach a queue.
        await self.broker.publish(SUPPRESSION_KEY, change, mandatory=False)
