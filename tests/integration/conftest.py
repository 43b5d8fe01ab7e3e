"""Fixtures several integration modules share (their helpers are in the ``*_support`` modules)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from postline.reports.store import Store
from tests.integration.reports_support import migrated
from tests.webhook_support import WebhookReceiver, receiver_pair


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """The reports service's store on an embedded ClickHouse with the whole schema."""
    store = Store(migrated(tmp_path / "ch"))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def receivers() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    """Two webhook receivers, each with its own secret (event and inbound webhook tests)."""
    with receiver_pair() as pair:
        yield pair
