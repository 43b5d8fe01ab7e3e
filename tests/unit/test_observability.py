"""Dashboards, alert rules and the observability configs of compose.yaml.

The alert rules go through `promtool check rules` and `promtool test rules` (Debian's prometheus
package ships promtool; scripts/bootstrap.sh unpacks it into var/tools), so each alert is shown
to fire on the series it is for and to stay quiet on the ones that only look like it. Every
PromQL expression of the dashboards is checked by promtool the same way, and every metric a
dashboard or rule names must be one Postline declares (semconv.py), one of RabbitMQ's
Prometheus plugin, or a recording rule of ours. The dashboards' ClickHouse SQL runs against the
real schema in tests/integration/test_dashboard_queries.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from postline.common import semconv
from tests.deploy_support import HEALTH_PORT, K8S, OBSERVABILITY, ROOT, tool
from tests.observability_support import RABBITMQ_METRICS

MIGRATIONS = (
    ROOT / "packages" / "common" / "src" / "postline" / "common" / "clickhouse" / "migrations"
)

RULES_DIR = OBSERVABILITY / "prometheus" / "rules"
RULES = RULES_DIR / "postline.rules.yaml"
RULE_TESTS = RULES_DIR / "postline.rules.test.yaml"
DASHBOARDS = K8S / "components" / "observability" / "dashboards"
PROMETHEUS_CONFIG = OBSERVABILITY / "prometheus" / "prometheus.yaml"
COLLECTOR_CONFIG = OBSERVABILITY / "otel-collector" / "config.yaml"
DATASOURCES = OBSERVABILITY / "grafana" / "provisioning" / "datasources" / "postline.yaml"

PROMETHEUS_TYPE = "prometheus"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
# The panels' data sources are the dashboards' own variables, so any Grafana can pick its own.
DATASOURCE_UIDS = {PROMETHEUS_TYPE: "${prometheus}", CLICKHOUSE_TYPE: "${clickhouse}"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {
    "sum", "count", "by", "without", "rate", "irate", "increase", "deriv", "histogram_quantile",
    "clamp_min", "min", "max", "avg", "and", "or", "unless", "offset", "vector", "on",
    "ignoring", "le", "bool",
}  # fmt: skip


def promtool() -> str:
    found = tool("promtool") or str(ROOT / "var" / "tools" / "bin" / "promtool")
    if not Path(found).is_file():
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/bootstrap.sh installs it")
        pytest.skip("no promtool (make install unpacks Debian's into var/tools/bin)")
    return found


def run_promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(dashboard file, panel title, target) of every query of one data source type."""
    for path in dashboards():
        board = json.loads(path.read_text())
        for panel in panels(board):
            for target in panel.get("targets", []):
                if target.get("datasource", panel.get("datasource", {}))["type"] == kind:
                    yield path.name, panel["title"], target


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def declared_metrics() -> set[str]:
    return {value for name, value in vars(semconv).items() if name.startswith("METRIC_")}


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names a PromQL expression reads."""
    without_strings = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    without_durations = re.sub(r"\b\d+(ms|[smhdwy])\b", "", without_groupings)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_durations))
    return names - PROMQL_WORDS


def unknown_metrics(expr: str) -> set[str]:
    known = declared_metrics() | RABBITMQ_METRICS | recorded() | {"up"}
    unknown = set()
    for name in metric_names(expr):
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in known:
                base = name.removesuffix(suffix)
        if base not in known:
            unknown.add(name)
    return unknown


# ---------------------------------------------------------------------------------- rules


def test_alert_rules_are_valid_prometheus_rules() -> None:
    out = run_promtool("check", "rules", RULES.name, cwd=RULES_DIR)
    assert "SUCCESS" in out


def test_alerts_fire_on_what_they_are_for() -> None:
    """promtool's unit tests: each alert against series that must and must not fire it."""
    run_promtool("test", "rules", RULE_TESTS.name, cwd=RULES_DIR)
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts == tested, f"alerts without a firing test: {sorted(alerts - tested)}"


def test_the_four_alerts_of_the_issue_exist() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert "postline_sender_attempts_total" in alerts["PostlineErrorRateSpike"]["expr"] or (
        "sender_failure_ratio" in alerts["PostlineErrorRateSpike"]["expr"]
    )
    assert "queue_messages" in alerts["PostlineBacklogGrowing"]["expr"]
    assert (
        semconv.METRIC_SUPPRESSION_LIST_LOADED
        in (alerts["PostlineSuppressionListNotLoaded"]["expr"])
    )
    assert "ingest_backlog" in alerts["PostlineIngestFallingBehind"]["expr"]
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_rules_read_only_metrics_that_exist() -> None:
    for rule in rules():
        assert not unknown_metrics(rule["expr"]), f"{rule}: {unknown_metrics(rule['expr'])}"


def test_the_prometheus_rule_is_generated_from_the_rules_file() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_prometheus_rule.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- dashboards


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.stem)
def test_dashboard_is_a_grafana_dashboard(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] == path.stem and len(board["uid"]) <= 40
    assert board["title"].startswith("Postline / ")
    assert "postline" in board["tags"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["prometheus"]["type"] == "datasource"
    assert variables["prometheus"]["query"] == PROMETHEUS_TYPE
    assert variables["clickhouse"]["query"] == CLICKHOUSE_TYPE
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels(board):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, f"{panel['title']}: off the grid"
        here = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & here, f"{panel['title']} overlaps another panel"
        cells |= here
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"], f"{path.name}: an empty panel"
        datasource = panel["datasource"]
        assert datasource["uid"] == DATASOURCE_UIDS[datasource["type"]], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == datasource
            if datasource["type"] == CLICKHOUSE_TYPE:
                assert target["editorType"] == "sql" and target["rawSql"].strip()
                expected = "timeSeries" if panel["type"] == "timeseries" else "table"
                assert target["queryType"] == expected
            else:
                assert target["expr"].strip()


def test_dashboards_cover_what_sres_watch() -> None:
    titles = {json.loads(p.read_text())["title"] for p in dashboards()}
    assert titles == {
        "Postline / Delivery overview",
        "Postline / Errors by status and domain",
        "Postline / Queues and backlog",
        "Postline / Sender attempts and latency",
        "Postline / Reports ingest",
    }
    for path in dashboards():
        kinds = {
            p["datasource"]["type"]
            for p in panels(json.loads(path.read_text()))
            if "datasource" in p
        }
        assert kinds == {PROMETHEUS_TYPE, CLICKHOUSE_TYPE}, f"{path.name} uses both sources"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every expression, written out as recording rules."""
    records = []
    for i, (board, title, target) in enumerate(targets(PROMETHEUS_TYPE)):
        expr = target["expr"].replace("$__rate_interval", "5m").replace("$__interval", "1m")
        assert "$" not in expr, f"{board} {title}: an unknown Grafana variable in {expr}"
        records.append({"record": f"dashboard:query_{i}", "expr": expr})
    (tmp_path / "queries.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]})
    )
    run_promtool("check", "rules", "queries.yaml", cwd=tmp_path)


def test_dashboards_read_only_metrics_that_exist() -> None:
    for board, title, target in targets(PROMETHEUS_TYPE):
        unknown = unknown_metrics(target["expr"])
        assert not unknown, f"{board} {title}: no such metric {sorted(unknown)}"


# --------------------------------------------------------------------------------- compose


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (rule_file,) = config["rule_files"]
    assert Path(rule_file).name == RULES.name, "compose mounts the rules directory"
    config["rule_files"] = [str(RULES)]
    (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(config))
    run_promtool("check", "config", "prometheus.yaml", cwd=tmp_path)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["rabbitmq"]["metrics_path"] == "/metrics/per-object", "per-queue metrics"
    for service, port in HEALTH_PORT.items():
        (static,) = jobs[f"postline-{service}"]["static_configs"]
        assert static["targets"] == [f"{service}:{port}"]


def test_collector_pipelines_use_what_they_define() -> None:
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    service = config["service"]
    for pipeline in service["pipelines"].values():
        for part in ("receivers", "processors", "exporters"):
            for name in pipeline.get(part, []):
                assert name in config[part], f"{name} is not defined under {part}"
    for name in service["extensions"]:
        assert name in config["extensions"]
    assert service["pipelines"]["traces"]["exporters"] == ["otlp/jaeger", "clickhouse"]


def test_the_collector_writes_the_spans_table_postline_makes() -> None:
    """Its ClickHouse exporter fills the table migration 0008 creates, and creates nothing."""
    exporter = yaml.safe_load(COLLECTOR_CONFIG.read_text())["exporters"]["clickhouse"]
    assert exporter["create_schema"] is False
    table = f"{exporter['database']}.{exporter['traces_table_name']}"
    migration = (MIGRATIONS / "0008_traces.sql").read_text()
    assert f"CREATE TABLE IF NOT EXISTS {table}\n" in migration


def test_grafana_has_the_data_sources_the_dashboards_ask_for() -> None:
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    kinds = {source["type"]: source for source in sources}
    assert kinds[PROMETHEUS_TYPE]["url"] == "http://prometheus:9090"
    assert kinds[CLICKHOUSE_TYPE]["jsonData"]["host"] == "clickhouse"
    assert kinds[CLICKHOUSE_TYPE]["jsonData"]["defaultDatabase"] == "postline"
