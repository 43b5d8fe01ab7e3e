"""``explain``: what the policy does with a delivery and why, and ``postline policy explain``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from postline.common.cli import main as postline
from postline.common.policy import load_policy
from postline.scheduler.explain import explain

DEV_POLICY = Path(__file__).resolve().parents[2] / "postline.dev.yaml"
NIGHT = datetime(2030, 1, 6, 14, 30, tzinfo=UTC)  # 23:30 in Tokyo
DAY = datetime(2030, 1, 7, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo


def _server():  # type: ignore[no-untyped-def]
    return load_policy(DEV_POLICY).server("default")


def test_a_campaign_at_night_is_held_with_its_reasons() -> None:
    answer = explain(
        "default",
        _server(),
        "fan@docomo.ne.jp",
        {"X-Category": "campaign"},
        NIGHT,
        shards=4,
    )
    assert answer.priority == "low"
    assert answer.hold_until == "2030-01-07T08:00:00+09:00"
    assert answer.speed_key == "group:jp-mobile" and answer.speed_rule == "speed[1]"
    assert answer.route == "MX of docomo.ne.jp"
    assert answer.retry_profile == "retry.profiles[0]"
    assert answer.suppression_checked is False
    why = "\n".join(answer.reasons)
    assert "priority[1] (X-Category ~ /^campaign$/)" in why
    assert "prohibited_hours[0]" in why and "held until 2030-01-07T08:00:00+09:00" in why
    assert "shared by group jp-mobile" in why and "rate 600/min" in why
    assert "every 30m" in why and "1d after acceptance" in why


def test_a_receipt_by_day_goes_at_once_on_the_default_rule() -> None:
    answer = explain("default", _server(), "buyer@a.test", {"X-Category": "receipt"}, DAY, shards=4)
    assert (answer.priority, answer.hold_until) == ("high", None)
    assert answer.speed_rule == 'speed[0] ("*")' and answer.speed_key == "domain:a.test"
    assert answer.route == "127.0.0.1:2600 (tls opportunistic)"
    assert answer.retry_profile == "retry"
    assert any("no filter matches; sent at once" in r for r in answer.reasons)


def test_forwarding_and_suppression_are_explained() -> None:
    answer = explain(
        "default",
        _server(),
        "buyer@a.test",
        {"Subject": "Order confirmation 42"},
        DAY,
        shards=4,
        suppressed=True,
    )
    assert answer.forwarding == "copy to archive@example.test"
    assert answer.suppressed and answer.suppression_checked
    assert "error status 10" in answer.reasons[0]


def test_mx_rules_need_mx_hosts() -> None:
    found = explain(
        "default", _server(), "a@gmail.example", {}, DAY, shards=4, mx_hosts=["mx.google.com"]
    )
    assert found.speed_key == "group:google"
    unknown = explain("default", _server(), "a@gmail.example", {}, DAY, shards=4)
    assert unknown.speed_key == "domain:gmail.example"
    assert any("mx: were not evaluated" in r for r in unknown.reasons)


def test_the_command_explains_offline() -> None:
    result = CliRunner().invoke(
        postline,
        [
            "policy",
            "explain",
            "--policy",
            str(DEV_POLICY),
            "--to",
            "fan@docomo.ne.jp",
            "--header",
            "X-Category: campaign",
            "--at",
            "2030-01-06T23:30:00+09:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "priority    low" in result.output
    assert "hold until  2030-01-06T23:00:00+00:00" in result.output
    assert "group:jp-mobile" in result.output
    assert "suppressed  not checked" in result.output

    as_json = CliRunner().invoke(
        postline,
        ["policy", "explain", "--policy", str(DEV_POLICY), "--to", "a@a.test", "--json"],
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["server"] == "default"


def test_the_command_reports_bad_input() -> None:
    runner = CliRunner()
    bad_header = runner.invoke(
        postline,
        ["policy", "explain", "--policy", str(DEV_POLICY), "--to", "a@a.test", "--header", "x"],
    )
    assert bad_header.exit_code != 0 and "Name: value" in bad_header.output
    bad_server = runner.invoke(
        postline,
        ["policy", "explain", "--policy", str(DEV_POLICY), "--to", "a@a.test", "--server", "no"],
    )
    assert bad_server.exit_code != 0 and "servers are default" in bad_server.output
    no_source = runner.invoke(postline, ["policy", "explain", "--to", "a@a.test"])
    assert no_source.exit_code != 0 and "--policy FILE" in no_source.output
