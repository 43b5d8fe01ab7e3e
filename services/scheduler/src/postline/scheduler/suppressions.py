"""The scheduler's copy of the suppression list (delivery blocking).

The bounce service owns the list. Every scheduler replica keeps a copy: at start it reads the
whole list over gRPC (``Suppressions.List``), and it applies each ``SuppressionChange`` bounce
publishes (its own exclusive queue, so every replica sees every change). Changes that arrive
while the initial list is being read are applied again on top of it, so a removal is not undone
by an older listing.

If bounce cannot be reached at start the scheduler keeps delivering (the list only ever blocks
what bounce already saw fail) and keeps retrying in the background; until the list is loaded
the gauge ``postline_scheduler_suppression_list_loaded`` is 0 and QueueStats/Explain say so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from postline.common.addresses import address_key
from postline.common.broker.consumer import MessageMeta
from postline.common.telemetry import grpc_client_interceptors
from postline.common.timeutil import from_timestamp
from postline.scheduler import metrics
from postline.v1 import events_pb2, suppression_pb2, suppression_pb2_grpc

logger = logging.getLogger(__name__)

PAGE_SIZE = 1000


@dataclass(frozen=True)
class Entry:
    expires_at: float | None  # None: never
    reason: str


class SuppressionList:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._entries: dict[tuple[str, str], Entry] = {}
        self._loading: list[events_pb2.SuppressionChange] | None = None
        self.loaded = False

    def __len__(self) -> int:
        return len(self._entries)

    def is_suppressed(self, server: str, address: str) -> bool:
        if not self._entries:
            return False  # no address to parse into a key
        key = (server, address_key(address))
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry.expires_at is not None and entry.expires_at <= self.clock():
            del self._entries[key]
            return False
        return True

    def apply(self, change: events_pb2.SuppressionChange) -> None:
        key = (change.server, address_key(change.address))
        if change.action == events_pb2.SUPPRESSION_ACTION_ADD:
            expires = from_timestamp(change.expires_at) if change.HasField("expires_at") else None
            self._entries[key] = Entry(expires, change.reason)
        elif change.action == events_pb2.SUPPRESSION_ACTION_REMOVE:
            self._entries.pop(key, None)
        if self._loading is not None:
            self._loading.append(change)
        metrics.SUPPRESSIONS.set(len(self._entries))

    async def on_change(self, change: events_pb2.SuppressionChange, meta: MessageMeta) -> None:
        logger.info(
            "%s suppression %s for server %s",
            change.address,
            events_pb2.SuppressionAction.Name(change.action),
            change.server,
        )
        self.apply(change)

    def begin_load(self) -> None:
        self._loading = []

    def finish_load(self, listed: list[suppression_pb2.Suppression]) -> None:
        """Replace the list with ``listed``, then apply the changes heard while it was read
        (a reload after a reconnection also drops removals this replica missed)."""
        changes, self._loading = self._loading or [], None
        entries = {}
        for item in listed:
            expires = from_timestamp(item.expires_at) if item.HasField("expires_at") else None
            entries[(item.server, address_key(item.address))] = Entry(expires, item.reason)
        self._entries = entries
        for change in changes:
            self.apply(change)
        self.loaded = True
        metrics.SUPPRESSION_LIST_LOADED.set(1)
        metrics.SUPPRESSIONS.set(len(self._entries))


async def list_all(address: str, timeout: float = 10.0) -> list[suppression_pb2.Suppression]:
    """Every suppression of every server, page by page."""
    found: list[suppression_pb2.Suppression] = []
    async with grpc.aio.insecure_channel(
        address, interceptors=grpc_client_interceptors()
    ) as channel:
        stub = suppression_pb2_grpc.SuppressionsStub(channel)
        page = 1
        while True:
            response = await stub.List(
                suppression_pb2.ListSuppressionsRequest(page=page, page_size=PAGE_SIZE),
                timeout=timeout,
            )
            found.extend(response.suppressions)
            if not response.suppressions or len(found) >= response.total:
                return found
            page += 1


async def load_forever(
    suppressions: SuppressionList, address: str, *, retry_every: float = 5.0
) -> None:
    """Read the initial list, retrying until bounce answers (run as a background task)."""
    attempt = 0
    while True:
        attempt += 1
        suppressions.begin_load()
        try:
            listed = await list_all(address)
        except grpc.aio.AioRpcError as exc:
            level = logging.WARNING if attempt == 1 or attempt % 12 == 0 else logging.DEBUG
            logger.log(
                level,
                "%s: suppression list not loaded (attempt %d: %s); delivering without it, "
                "retrying every %ss",
                address,
                attempt,
                exc.code().name,
                retry_every,
            )
            await asyncio.sleep(retry_every)
            continue
        suppressions.finish_load(listed)
        logger.info("%s: suppression list loaded (%d entries)", address, len(listed))
        return
