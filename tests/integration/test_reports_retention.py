"""TTL retention against real ClickHouse (chdb): rows past the retention are dropped from the
events, both logs and every rollup; changing the retention changes it for existing tables."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client

from postline.common.clickhouse import apply_migrations, connect
from postline.common.clickhouse.migrate import retention_tables

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)


def insert(client: Client, prefix: str, at: datetime) -> None:
    client.insert(
        "postline.delivery_events",
        [
            [f"{prefix}-q", prefix, "queued", at, at, "default", "r@x.test", "x.test", 0, ""],
            [f"{prefix}-s", prefix, "succeeded", at, at, "default", "r@x.test", "x.test", 250, "m"],
        ],
        column_names=[
            "event_id", "delivery_id", "status", "at", "accepted_at", "server", "recipient",
            "recipient_domain", "reply_code", "mx_host",
        ],
    )  # fmt: skip
    client.insert(
        "postline.error_log",
        [[f"{prefix}-x", prefix, at, 2, "r@x.test", "default"]],
        column_names=["event_id", "delivery_id", "created", "status", "recipient", "server"],
    )


def counts(client: Client) -> dict[str, int]:
    tables = sorted(retention_tables(client))
    for table in tables:
        client.command(f"OPTIMIZE TABLE {table} FINAL")  # merges apply the TTL
    return {t: int(client.query(f"SELECT count() FROM {t}").result_rows[0][0]) for t in tables}


def test_rows_past_the_retention_are_dropped_everywhere(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'ch'}")
    apply_migrations(client, retention_days=40)
    insert(client, "old", NOW - timedelta(days=45))
    insert(client, "mid", NOW - timedelta(days=20))
    insert(client, "new", NOW - timedelta(days=1))
    after = counts(client)
    assert set(after) >= {
        "postline.delivery_events", "postline.delivery_log", "postline.error_log",
        "postline.stats_hourly", "postline.stats_domains_hourly", "postline.stats_mx_hourly",
        "postline.stats_senders_hourly", "postline.stats_replies_hourly",
        "postline.stats_errors_hourly",
    }  # fmt: skip
    assert after["postline.delivery_events"] == 4  # mid and new: 2 events each
    assert after["postline.delivery_log"] == 2
    assert after["postline.error_log"] == 2
    stats = [t for t in after if t.startswith("postline.stats_")]
    assert all(after[t] == 2 for t in stats)  # two hours with rows left
    ids = client.query("SELECT DISTINCT delivery_id FROM postline.delivery_events").result_rows
    assert sorted(ids) == [("mid",), ("new",)]
    client.close()

    # A shorter retention, given to `postline migrate`, applies to the existing tables.
    dsn = f"chdb://{tmp_path / 'ch'}"
    run = [sys.executable, "-m", "postline.common.cli", "migrate", "--dsn", dsn]
    out = subprocess.run(
        [*run, "--retention-days", "10"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert "retention of postline.error_log set to 10 days" in out
    assert "retention of postline.stats_hourly set to 10 days" in out
    again = subprocess.run(
        [*run, "--retention-days", "10"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert again.strip() == "schema is up to date"
    client = connect(dsn)
    after = counts(client)
    assert after["postline.delivery_events"] == 2 and after["postline.error_log"] == 1
    assert all(after[t] == 1 for t in stats)
    client.close()
