"""Small writes and reads of the console's own tables (accounts, sessions, operation log).

They run on the store's reader threads, not behind ingest's writer, so a log-in never waits
for a 20,000-event insert; inserts are synchronous (a session is readable once written).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from postline.reports.store import Store

INSERT_SETTINGS = {"async_insert": 0}


def version_now() -> int:
    """A row version: microseconds since the epoch (later changes win)."""
    return time.time_ns() // 1000


async def insert(
    store: Store, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]
) -> None:
    await store.run(
        lambda c: c.insert(
            f"postline.{table}", list(rows), column_names=list(columns), settings=INSERT_SETTINGS
        )
    )
