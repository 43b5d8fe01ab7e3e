"""Migrations against real ClickHouse (embedded chdb): from empty and from each previous
version (with data), idempotent, recorded, resumable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from postline.common.clickhouse import apply_migrations, connect, pending_migrations
from postline.common.clickhouse.migrate import all_migrations, applied_versions, migration_status

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


def _sample(client: Client, batch: str = "") -> None:
    """Rows every schema version has had tables for (those of 0001)."""
    from datetime import UTC, datetime, timedelta

    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    columns = [
        "event_id", "delivery_id", "status", "at", "accepted_at", "server", "api_user",
        "recipient", "recipient_domain", "reply_code", "enhanced_status", "mx_host",
    ]  # fmt: skip
    client.insert(
        "postline.delivery_events",
        [
            [f"e1{batch}", f"d1{batch}", "queued", t0, t0, "default", "dev", "A@X.test",
             "x.test", 0, "", ""],
            [f"e2{batch}", f"d1{batch}", "failed", t0 + timedelta(seconds=1), t0, "default", "dev",
             "A@X.test", "x.test", 550, "5.1.1", "mx.x.test"],
            [f"e3{batch}", f"d2{batch}", "queued", t0, t0, "default", "dev", "b@y.test", "y.test",
             0, "", ""],
        ],
        column_names=columns,
    )  # fmt: skip
    client.insert(
        "postline.error_log",
        [[f"x1{batch}", f"d1{batch}", t0 + timedelta(seconds=2), 2, "A@X.Test", "default", "dev"]],
        column_names=["event_id", "delivery_id", "created", "status", "recipient", "server",
                      "api_user"],
    )  # fmt: skip


def _check_sample(client: Client) -> None:
    log = client.query(
        "SELECT delivery_id, status FROM postline.delivery_log FINAL ORDER BY delivery_id"
    ).result_rows
    assert log == [("d1", "failed"), ("d2", "queued")]
    errors = client.query("SELECT event_id, recipient_domain FROM postline.error_log").result_rows
    assert errors == [("x1", "x.test")]
    rollup = client.query(
        "SELECT sum(queued), sum(failed) FROM postline.stats_hourly WHERE server = 'default'"
    ).result_rows
    assert rollup == [(2, 1)]  # counted once, whether backfilled or fed by the views
    errors_rollup = client.query(
        "SELECT recipient_domain, status, sum(errors) FROM postline.stats_errors_hourly "
        "GROUP BY ALL"
    ).result_rows
    assert errors_rollup == [("x.test", 2, 1)]
    replies = client.query(
        "SELECT reply_code, enhanced_status, sum(replies) FROM postline.stats_replies_hourly "
        "GROUP BY ALL"
    ).result_rows
    assert replies == [(550, "5.1.1", 1)]


@pytest.mark.parametrize("version", [m.version for m in all_migrations()[:-1]])
def test_migrations_up_from_each_previous_version(tmp_path: Path, version: int) -> None:
    client = connect(f"chdb://{tmp_path / 'ch'}")
    apply_migrations(client, target=version)
    assert applied_versions(client) == {m.version for m in all_migrations() if m.version <= version}
    _sample(client)  # data written by a service on that version
    applied = apply_migrations(client)
    assert [m.version for m in applied] == [m.version for m in all_migrations()][
        [m.version for m in all_migrations()].index(version) + 1 :
    ]
    _check_sample(client)
    _sample(client, "b")  # and the upgraded schema takes new rows the same way (views fire)
    count = client.query("SELECT sum(queued) FROM postline.stats_hourly").result_rows
    assert count == [(4,)]
    client.close()


def test_an_interrupted_migration_resumes_where_it_stopped(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'ch'}")
    apply_migrations(client, target=1)
    _sample(client)
    # 0002 ran two statements, then the process died.
    second = next(m for m in all_migrations() if m.version == 2)
    for step, statement in enumerate(second.statements(40)[:2]):
        client.command(statement)
        client.insert(
            "postline.schema_migration_steps", [[2, step]], column_names=["version", "step"]
        )
    states = {s.migration.version: s.state for s in migration_status(client)}
    assert states[1] == "applied" and states[2].startswith("partial (2/")
    assert states[3] == "pending"
    apply_migrations(client)  # replaying the first two statements would fail: they are skipped
    assert pending_migrations(client) == []
    _check_sample(client)
    client.close()


def test_migrate_status_lists_every_migration(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'ch'}"
    client = connect(dsn)
    apply_migrations(client, target=2)
    client.close()
    run = [sys.executable, "-m", "postline.common.cli", "migrate", "--dsn", dsn, "--status"]
    out = subprocess.run(run, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    lines = out.splitlines()
    assert lines[:3] == [
        "0001_events_and_logs: applied",
        "0002_search_layout: applied",
        "0003_rollups: pending",
    ]
    assert len(lines) == len(all_migrations())


def test_address_search_uses_the_recipient_text_index(tmp_path: Path) -> None:
    """0004 replaced 0002's bloom filter with a text index the address LIKE can use."""
    client = connect(f"chdb://{tmp_path / 'ch'}")
    apply_migrations(client)
    indexes = {
        (table, name, kind)
        for table, name, kind in client.query(
            "SELECT table, name, type FROM system.data_skipping_indices WHERE database = 'postline'"
            " AND table IN ('delivery_log', 'error_log')"
        ).result_rows
    }
    assert ("delivery_log", "recipient_text", "text") in indexes
    assert ("error_log", "recipient_text", "text") in indexes
    assert not any(name == "recipient_ngrams" for _, name, _ in indexes)
    client.command("INSERT INTO postline.error_log (recipient) VALUES ('Taro123@example.test')")
    plan = "\n".join(
        row[0]
        for row in client.query(
            "EXPLAIN indexes = 1 SELECT count() FROM postline.error_log"
            " WHERE lowerUTF8(recipient) LIKE '%taro123@%'"
        ).result_rows
    )
    assert "recipient_text" in plan
    client.close()
