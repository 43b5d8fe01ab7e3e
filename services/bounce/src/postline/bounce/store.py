"""The bounce service's ClickHouse: one client behind one worker thread.

clickhouse-connect is synchronous and chdb is one engine per process, so every call goes
through a single-thread executor: the event loop never blocks and calls never interleave.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from postline.common.clickhouse import connect
from postline.common.clickhouse.health import ClickHouseHealth, probe

T = TypeVar("T")


class Store:
    def __init__(self, dsn: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._client: Client = self._executor.submit(connect, dsn).result()
        self.health = ClickHouseHealth()

    async def run(self, fn: Callable[[Client], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, self._client)

    async def _write(self, fn: Callable[[Client], T]) -> T:
        """``run`` for what writes (and the probe): its outcome is the store's health."""
        return await self.health.recorded(self.run(fn))

    async def ping(self) -> None:
        await self._write(probe)

    async def insert(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]
    ) -> None:
        await self._write(lambda c: c.insert(table, rows, column_names=list(columns)))

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        def go(client: Client) -> list[dict[str, Any]]:
            result = client.query(sql, parameters=parameters)
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

        return await self.run(go)

    def close(self) -> None:
        self._executor.submit(self._client.close).result()
        self._executor.shutdown()
