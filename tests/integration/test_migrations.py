"""Migrations against real ClickHouse (embedded chdb): from empty, idempotent, recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from postline.common.clickhouse import apply_migrations, connect, pending_migrations
from postline.common.clickhouse.migrate import all_migrations, applied_versions

ROOT = Path(__file__).resolve().parents[2]


def test_migrations_apply_from_empty_then_nothing_is_pending(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'ch'}")
    assert [m.version for m in pending_migrations(client)] == [m.version for m in all_migrations()]
    applied = apply_migrations(client, retention_days=7)
    assert [m.version for m in applied] == [m.version for m in all_migrations()]
    assert pending_migrations(client) == []
    assert apply_migrations(client) == []  # idempotent
    tables = {r[0] for r in client.query("SHOW TABLES FROM postline").result_rows}
    assert {"delivery_events", "delivery_log", "error_log", "schema_migrations"} <= tables
    ddl = client.query("SHOW CREATE TABLE postline.error_log").result_rows[0][0]
    assert "toIntervalDay(7)" in ddl  # the retention reached the TTL
    client.close()


def test_delivery_log_keeps_the_latest_state(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    client = connect(f"chdb://{tmp_path / 'ch'}")
    apply_migrations(client)
    t0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
    columns = ["event_id", "delivery_id", "status", "at", "accepted_at", "recipient"]
    rows = [
        ["e2", "d1", "succeeded", t0 + timedelta(seconds=2), t0, "a@x.test"],
        ["e1", "d1", "queued", t0, t0, "a@x.test"],  # arrives late: must not win
        ["e1", "d1", "queued", t0, t0, "a@x.test"],  # duplicate event: harmless
    ]
    client.insert("postline.delivery_events", rows, column_names=columns)
    got = client.query("SELECT status FROM postline.delivery_log FINAL WHERE delivery_id='d1'")
    assert got.result_rows == [("succeeded",)]
    events = client.query("SELECT count() FROM postline.delivery_events FINAL").result_rows
    assert events == [(2,)]
    client.close()


def test_postline_migrate_command(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'ch'}"
    run = [sys.executable, "-m", "postline.common.cli", "migrate", "--dsn", dsn]
    first = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT)
    assert "applied 0001_events_and_logs" in first.stdout
    second = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT)
    assert "schema is up to date" in second.stdout
    status = subprocess.run([*run, "--status"], capture_output=True, text=True, check=True)
    assert "0001_events_and_logs: applied" in status.stdout
    client = connect(dsn)
    assert applied_versions(client) == {m.version for m in all_migrations()}
    client.close()
