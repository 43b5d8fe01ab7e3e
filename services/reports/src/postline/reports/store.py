"""The reports store: ClickHouse behind worker threads.

clickhouse-connect is synchronous, so calls run in threads and the event loop never blocks.
Writes (ingest) and reads (the API) have threads of their own, each thread its own client:
a long export never holds up ingest, and a large insert never holds up a search. chdb (one
engine per process) accepts clients on the same path from several threads; a server gets a
connection per thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from postline.common.clickhouse import connect
from postline.common.clickhouse.client import normalize_dsn
from postline.common.clickhouse.health import ClickHouseHealth, probe

T = TypeVar("T")


class _Pool:
    def __init__(self, dsn: str, workers: int, name: str) -> None:
        self._dsn = dsn
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = connect(self._dsn)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    async def run(self, fn: Callable[[Client], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(self.client()))

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()


class Store:
    def __init__(self, dsn: str, *, readers: int = 2) -> None:
        self.dsn = normalize_dsn(dsn)
        self._writer = _Pool(dsn, 1, "clickhouse-write")
        self._readers = _Pool(dsn, readers, "clickhouse-read")
        self._writer.executor.submit(self._writer.client).result()  # fail fast on a bad DSN
        # The writer's outcomes (ingest, pings): whether events can be written now.
        self.health = ClickHouseHealth()

    @property
    def local_path(self) -> Path | None:
        """The data directory of the embedded engine (None for a server)."""
        return Path(self.dsn.removeprefix("chdb://")) if self.dsn.startswith("chdb://") else None

    async def run(self, fn: Callable[[Client], T]) -> T:
        """Run ``fn(client)`` on a reader thread."""
        return await self._readers.run(fn)

    async def write(self, fn: Callable[[Client], T]) -> T:
        """Run ``fn(client)`` on the writer thread (writes stay in order)."""
        return await self.health.recorded(self._writer.run(fn))

    async def ping(self) -> None:
        await self.write(probe)

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        def go(client: Client) -> list[dict[str, Any]]:
            result = client.query(sql, parameters=parameters)
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

        return await self.run(go)

    async def rows(
        self, sql: str, parameters: dict[str, Any]
    ) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
        """Column names and rows as tuples (cheaper than a dict per row for large answers)."""

        def go(client: Client) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
            result = client.query(sql, parameters=parameters)
            return result.column_names, result.result_rows

        return await self.run(go)

    def close(self) -> None:
        self._writer.close()
        self._readers.close()
