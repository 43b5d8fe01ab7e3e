"""The console's pure pieces: its words in both languages, the policy view without secrets,
error sentences, chart data."""

from __future__ import annotations

import json
import re
import string
from importlib import resources

import pytest

from postline.common.policy import hash_secret, load_policy, parse_policy
from postline.reports.console import views
from postline.reports.console.i18n import LANGUAGES, Words, catalog
from postline.reports.console.oplog import ACTIONS
from postline.reports.params import SearchError
from postline.reports.policy_view import SECTIONS, policy_view
from postline.reports.search import DELIVERY_STATUSES, ERROR_STATUSES
from tests.conftest import DEV_POLICY

TEMPLATES = resources.files("postline.reports.console").joinpath("templates")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_every_text_with_the_same_placeholders() -> None:
    english, japanese = catalog("en"), catalog("ja")
    assert set(english) == set(japanese)
    for key, text in english.items():
        assert text and japanese[key], key
        assert _fields(text) == _fields(japanese[key]), key
    assert all(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", t) for k, t in japanese.items()
               if k.startswith(("nav.", "status.", "error_status.")))  # fmt: skip


def test_every_text_a_template_names_exists() -> None:
    used = set()
    for template in TEMPLATES.iterdir():
        used |= set(re.findall(r"""\bt\(["']([a-z_.\-0-9]+)["']""", template.read_text()))
    # "status." ~ value: built from data, checked below
    missing = {k for k in used if not k.endswith(".")} - set(catalog("en"))
    assert not missing
    # keys built from data: every value the data can take has its words
    dynamic = (
        [f"error_status.{s}" for s in ERROR_STATUSES]
        + [f"status.{s}" for s in DELIVERY_STATUSES]
        + [f"action.{a}" for a in ACTIONS]
        + [f"stat.{s}" for s in views.STAT_PAGES]
        + [f"settings.section.{s}" for s in SECTIONS]
        + [f"weekday.{d}" for d in range(1, 8)]
        + [key for _, key, _ in views.MENU]
    )
    for language in LANGUAGES:
        assert not [k for k in dynamic if k not in catalog(language)], language


def test_the_policy_view_holds_no_secret() -> None:
    policy = parse_policy(
        f"""
version: 1
servers:
  default:
    return_path_domain: bounce.example.test
    api_users: [{{name: dev, secret: {{argon2: "{hash_secret("dev-secret")}"}}}}]
    dkim: [{{domain: example.test, selector: s1, key: {{file: /run/secrets/dkim.pem}}}}]
    webhooks:
      - url: https://user:pw@hooks.example.test/in?token=abc
        secret: {{env: HOOK_SECRET}}
console:
  accounts:
    - {{email: a@example.test, role: admin, password: {{argon2: "{hash_secret("x")}"}},
        totp: {{env: TOTP_A}}}}
"""
    )
    text = json.dumps(policy_view(policy, ["default"]))
    for secret in ("argon2", "dkim.pem", "HOOK_SECRET", "TOTP_A", "token=abc", "pw@", "user:"):
        assert secret not in text, secret
    server = policy_view(policy, ["default"])["servers"][0]
    assert server["dkim"] == [{"domain": "example.test", "selector": "s1",
                               "algorithm": "rsa-sha256"}]  # fmt: skip
    assert server["webhooks"][0]["url"] == "https://hooks.example.test/in"
    assert server["api_users"] == [{"name": "dev", "allowed_ips": ["0.0.0.0/0", "::/0"]}]


def test_the_dev_policy_view_shows_each_section() -> None:
    server = policy_view(load_policy(DEV_POLICY), ["default"])["servers"][0]
    assert server["speed"][1]["rate"] == "600/min" and server["speed"][1]["interval"] == "1s"
    assert server["prohibited_hours"][0]["windows"] == ["21:00-08:00"]
    assert server["prohibited_hours"][0]["timezone"] == "Asia/Tokyo"
    assert server["retry"]["interval"] == "10m" and server["routes"][0]["to"] == "127.0.0.1:2600"
    assert server["priority"][0]["pattern"] == "^(receipt|password-reset)$"


@pytest.mark.parametrize(
    ("language", "error", "expected"),
    [
        ("en", SearchError("start", "start is required", "required"), "Start date is required."),
        ("ja", SearchError("start", "start is required", "required"), "開始日を入力してください。"),
        ("en", SearchError("end", "x", "order"), "The end date must not be before the start date."),
        ("en", SearchError("nope", "nope is odd"), "nope is odd"),
    ],
)
def test_parameter_errors_in_the_viewers_words(
    language: str, error: SearchError, expected: str
) -> None:
    assert views.form_error(Words(language), error) == expected


def test_chart_data_follows_the_statistic() -> None:
    answer = {
        "stat": "days-of-week", "key": "weekday", "columns": ["queued", "errors"],
        "rows": [{"weekday": 1, "label": "Mon", "queued": 3, "errors": 1},
                 {"weekday": 2, "label": "Tue", "queued": 0, "errors": 0}],
    }  # fmt: skip
    chart = views.stats_chart(Words("ja"), answer, "bar")
    assert chart["labels"] == ["月曜日", "火曜日"]
    assert [d["data"] for d in chart["datasets"]] == [[3, 0], [1, 0]]
    pie = views.error_pie(
        Words("en"),
        {"rows": [{"status": 2, "errors": 4}, {"status": 5, "errors": 0}]},
    )
    assert pie["labels"] == ["2 Unknown user"] and pie["datasets"][0]["data"] == [4]
