"""Every ClickHouse query of the Grafana dashboards runs on the real schema (chdb, all migrations)
and answers what its panel says, with Grafana's macros expanded as the ClickHouse data source
expands them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from postline.common.clickhouse import apply_migrations, connect
from tests.deploy_support import K8S

DASHBOARDS = K8S / "components" / "observability" / "dashboards"


def clickhouse_queries() -> Iterator[tuple[str, str, str]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if "rawSql" in target:
                    yield path.stem, panel["title"], target["rawSql"]


def clickhouse_now(client: Client) -> datetime:
    """ClickHouse's clock: the panels' now() is its, so the test's "now" and "an hour ago" are
    too (under libfaketime, which chdb does not see, the test's own clock is another)."""
    now: datetime = client.query("SELECT now64(6, 'UTC')").result_rows[0][0]
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def expand(client: Client, sql: str) -> str:
    """The grafana-clickhouse-datasource macros the dashboards use, for the last six hours."""
    now = clickhouse_now(client)
    start, end = int((now - timedelta(hours=6)).timestamp()), int(now.timestamp()) + 1
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime({start})").replace(
        "$__toTime", f"toDateTime({end})"
    )
    assert "$" not in sql, f"a macro the test does not expand: {sql}"
    return sql


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """The reports schema with a few deliveries: a.test waits (one queued an hour ago, one
    deferred), b.test delivered one and failed one (Unknown user)."""
    client = connect(f"chdb://{tmp_path_factory.mktemp('ch')}")
    apply_migrations(client)
    now = clickhouse_now(client).replace(microsecond=0)
    hour_ago = now - timedelta(hours=1)
    columns = [
        "event_id", "delivery_id", "message_id", "status", "at", "accepted_at", "server",
        "api_user", "recipient", "recipient_domain", "attempt", "reply_code", "mx_host",
        "error_status",
    ]  # fmt: skip
    rows: list[list[Any]] = [
        ["e1", "d1", "m1", "queued", hour_ago, hour_ago, "default", "dev", "x@a.test", "a.test",
         0, 0, "", 0],
        ["e2", "d2", "m1", "queued", now, now, "default", "dev", "y@a.test", "a.test", 0, 0, "", 0],
        ["e3", "d2", "m1", "deferred", now, now, "default", "dev", "y@a.test", "a.test", 1, 451,
         "mx.a.test", 0],
        ["e4", "d3", "m2", "queued", now, now, "default", "dev", "z@b.test", "b.test", 0, 0, "", 0],
        ["e5", "d3", "m2", "succeeded", now, now, "default", "dev", "z@b.test", "b.test", 1, 250,
         "mx.b.test", 0],
        ["e6", "d4", "m2", "queued", now, now, "default", "dev", "w@b.test", "b.test", 0, 0, "", 0],
        ["e7", "d4", "m2", "failed", now, now, "default", "dev", "w@b.test", "b.test", 1, 550,
         "mx.b.test", 2],
    ]  # fmt: skip
    client.insert("postline.delivery_events", rows, column_names=columns)
    client.insert(
        "postline.error_log",
        [["e7", "d4", "m2", now, 2, "w@b.test", "user unknown", "smtp", True, 550, "5.1.1"]],
        column_names=[
            "event_id", "delivery_id", "message_id", "created", "status", "recipient", "reason",
            "source", "permanent", "reply_code", "enhanced_status",
        ],
    )  # fmt: skip
    yield client
    client.close()


@pytest.mark.parametrize(
    ("board", "title", "sql"), list(clickhouse_queries()), ids=lambda v: str(v)[:40]
)
def test_dashboard_query_runs(reports: Client, board: str, title: str, sql: str) -> None:
    reports.query(expand(reports, sql))


def panel_rows(reports: Client, board: str, title: str) -> list[dict[str, Any]]:
    (sql,) = [s for b, t, s in clickhouse_queries() if (b, t) == (board, title)]
    result = reports.query(expand(reports, sql))
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def test_waiting_deliveries_per_destination(reports: Client) -> None:
    rows = panel_rows(
        reports, "postline-queues", "Waiting deliveries per destination, oldest first"
    )
    assert [r["domain"] for r in rows] == ["a.test"], "b.test has nothing left to deliver"
    (waiting,) = rows
    assert (waiting["queued"], waiting["deferred"]) == (1, 1)
    # The one queued an hour before the others, not one of those.
    assert waiting["oldest_waiting_seconds"] >= 3600


def test_errors_by_domain_and_status(reports: Client) -> None:
    rows = panel_rows(reports, "postline-errors", "Errors by domain and status")
    assert [(r["domain"], r["status"], r["error_status"], r["errors"]) for r in rows] == [
        ("b.test", 2, "Unknown user", 1)
    ]


def test_deliveries_by_status_per_hour(reports: Client) -> None:
    rows = panel_rows(reports, "postline-overview", "Deliveries by status, per hour")
    totals = {k: sum(r[k] for r in rows) for k in ("queued", "deferred", "succeeded", "failed")}
    assert totals == {"queued": 4, "deferred": 1, "succeeded": 1, "failed": 1}


def test_ingest_lag_is_the_age_of_the_newest_event(reports: Client) -> None:
    (row,) = panel_rows(reports, "postline-ingest", "Age of the newest stored event (ingest lag)")
    # The newest events, not the one of an hour before them.
    assert 0 <= row["lag_seconds"] < 3600


def test_failure_share_by_domain(reports: Client) -> None:
    rows = panel_rows(reports, "postline-errors", "Failure share by destination domain")
    assert [(r["domain"], r["delivered"], r["failures"], r["failure_share"]) for r in rows] == [
        ("b.test", 1, 1, 0.5)
    ]


def test_every_dashboard_has_clickhouse_panels() -> None:
    boards = {board for board, _, _ in clickhouse_queries()}
    assert boards == {p.stem for p in Path(DASHBOARDS).glob("*.json")}
