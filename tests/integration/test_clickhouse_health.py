"""Readiness follows ClickHouse's ability to take writes: a full disk (a real one: a small
tmpfs filled up) makes the bounce and reports stores say so, and the probe notices the room
coming back without any write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postline.bounce.store import Store as BounceStore
from postline.common.clickhouse import apply_migrations, connect
from postline.reports.store import Store as ReportsStore
from tests.faults_support import Ballast, can_mount


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Ballast]:
    if not can_mount(tmp_path):
        pytest.skip("cannot mount a tmpfs here (root needed)")
    ballast = Ballast(tmp_path / "ch", size="256m")
    ballast.mount()
    client = connect(f"chdb://{ballast.path}")
    apply_migrations(client)
    client.close()
    try:
        yield ballast
    finally:
        ballast.unmount()


ROW = ["d1", "m1", "<m1@x>", "default", "dev", "a@x.test", "b@y.test", "s", "", 0, ""]
COLUMNS = [
    "delivery_id", "message_id", "header_message_id", "server", "api_user", "envelope_from",
    "recipient", "subject", "api_data", "accepted_at", "trace_id",
]  # fmt: skip


async def test_bounce_is_unready_while_its_disk_is_full(disk: Ballast) -> None:
    store = BounceStore(f"chdb://{disk.path}")
    try:
        await store.ping()
        assert store.health.problem() is None
        disk.fill()
        with pytest.raises(Exception, match=r"not enough space"):
            await store.insert("postline.bounce_deliveries", [ROW], COLUMNS)
        assert "not enough space" in (store.health.problem() or "")
        # a read still works, and does not make the store look healthy
        await store.query("SELECT count() FROM postline.bounce_deliveries", {})
        assert store.health.problem() is not None
        with pytest.raises(Exception, match="no room for inserts"):
            await store.ping()
        disk.drain()
        await store.ping()
        assert store.health.problem() is None
        await store.insert("postline.bounce_deliveries", [ROW], COLUMNS)
    finally:
        store.close()


async def test_reports_probe_says_the_disk_is_full(disk: Ballast) -> None:
    store = ReportsStore(f"chdb://{disk.path}")
    try:
        disk.fill()
        with pytest.raises(Exception, match="no room for inserts"):
            await store.ping()
        assert "no room for inserts" in (store.health.problem() or "")
        disk.drain()
        await store.ping()
        assert store.health.problem() is None
    finally:
        store.close()
