"""The console as people use it, in chromium: logging in as each role, searching and paging
the error log, details and history, the CSV download byte for byte against the API, every
chart drawn from the seeded data, the live view updating itself, suppressions, accounts and
two-factor set-up, the operation log, refusals (viewer, wrong password or code, no CSRF
token), the Japanese pages, and a screenshot of every page at 1280 px and 390 px."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pyotp
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from postline.common.semconv import DELIVERY_ID, SERVER
from postline.v1 import events_pb2
from tests.browser.conftest import (
    FAILED,
    HISTORY_ID,
    HISTORY_TRACE,
    TOTP_SECRET,
    Console,
    _delivery,
    log_in,
    shoot,
)
from tests.polling import poll_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def admin(browser: Any, console_server: Console) -> Any:
    page = log_in(browser, console_server, "admin@example.test", "admin")
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def viewer(browser: Any, console_server: Console) -> Any:
    page = log_in(browser, console_server, "viewer@example.test", "viewer")
    yield page
    page.context.close()


def span_texts(page: Any, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def test_error_log_search_cap_pager_detail_and_history(admin: Any, console_server: Console) -> None:
    page = admin
    page.goto("/errors")
    assert page.get_by_role("heading", name="Error log").is_visible()
    # the search form: every field labelled; dates typed, the search run by keyboard
    page.get_by_label("Start date").fill(console_server.start)
    page.get_by_label("End date").fill(console_server.end)
    page.get_by_label("Destination address").fill("")
    page.get_by_label("End date").press("Enter")
    page.wait_for_url(re.compile(r"/errors\?start="))
    assert f"start={console_server.start}" in page.url  # the search is in the URL
    notice = page.get_by_text("the first 100 are shown; narrow the search", exact=False)
    assert notice.is_visible()
    assert page.get_by_role("heading", name="100 results").is_visible()
    rows = page.locator("section.results tbody tr")
    assert rows.count() == 10
    # the pager sits at the top right of the results, above the table
    pager = page.get_by_role("navigation", name="Pages")
    head = page.locator(".results-head").bounding_box()
    box = pager.bounding_box()
    table = page.locator("section.results table").bounding_box()
    assert box and head and table and box["y"] < table["y"]
    assert box["x"] + box["width"] > head["x"] + head["width"] * 0.6
    first_page = span_texts(page, "section.results tbody tr td:nth-child(2)")
    pager.get_by_role("link", name="2", exact=True).click()
    page.wait_for_url(re.compile(r"page=2"))
    second_page = span_texts(page, "section.results tbody tr td:nth-child(2)")
    assert len(second_page) == 10 and not set(first_page) & set(second_page)
    shoot(page, "errors")

    # narrowing: one error status, a partial, case-insensitive address
    page.get_by_label("Error").select_option("2")
    page.get_by_label("Destination address").fill("USER001")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"error=2"))
    assert span_texts(page, "section.results tbody tr td:nth-child(2)") == ["user001@b.test"]

    # the detail, then the delivery's history
    page.get_by_role("link", name="user001@b.test").click()
    page.wait_for_url(re.compile(r"/errors/x-0001"))
    detail = page.locator("dl.detail").inner_text()
    for expected in (
        "2 Unknown user", "app@example.test", "bounce-d-0001@bounce.example.test",
        "user001@b.test", "Order 1", "<m-0001@app.example.test>", "order=1",
        "550 5.1.1 <user001@b.test>: user unknown (case 1)",
    ):  # fmt: skip
        assert expected in detail, expected
    shoot(page, "error-detail")
    page.get_by_role("link", name=re.compile("history")).click()
    page.wait_for_url(re.compile(r"/deliveries/d-0001"))
    events = span_texts(page, "table tbody tr td:nth-child(2)")
    assert events[:2] == ["queued", "failed"]
    # The page asks GET /api/v1/traces/{id}, which has no span of this trace.
    page.get_by_text("No trace stored for this delivery.").wait_for()


def test_empty_and_bad_searches_answer_in_words(admin: Any) -> None:
    page = admin
    page.goto("/errors?" + urlencode({"start": "", "end": "2026-01-01"}))
    assert page.get_by_role("alert").inner_text() == "Start date is required."
    page.goto("/errors?start=2026-13-01&end=2026-01-01")
    assert "Start date must be a date as YYYY-MM-DD." in page.get_by_role("alert").inner_text()
    page.goto("/errors?start=2026-01-02&end=2026-01-01")
    assert "must not be before" in page.get_by_role("alert").inner_text()
    page.goto("/errors?start=2001-01-01&end=2001-01-02")
    assert page.get_by_text("Nothing matched this search.").is_visible()


def test_delivery_log_and_every_attempt_in_the_history(admin: Any, console_server: Console) -> None:
    page = admin
    query = {"start": console_server.start, "end": console_server.end}
    page.goto("/deliveries?" + urlencode({**query, "status": "succeeded"}))
    assert page.get_by_label("Status").input_value() == "succeeded"
    statuses = set(span_texts(page, "section.results tbody tr td:nth-child(4)"))
    assert statuses == {"succeeded"}
    shoot(page, "deliveries")
    page.goto(f"/deliveries/{HISTORY_ID}")
    events = page.locator("table").first.locator("tbody tr")
    assert events.count() == 3
    assert span_texts(page, "table >> nth=0 >> tbody tr td:nth-child(2)") == [
        "queued", "deferred", "succeeded",
    ]  # fmt: skip
    text = page.locator("table").first.inner_text()
    assert "451 4.7.1" in text and "greylisted" in text and "mx.history.test" in text
    assert f"bounce-{HISTORY_ID}@bounce.example.test" in page.locator("dl.detail").inner_text()
    assert HISTORY_TRACE in page.locator("dl.detail").inner_text()
    shoot(page, "delivery-history")


def test_trace_timeline_is_drawn_from_stored_spans(browser: Any, console_server: Console) -> None:
    # The history delivery's spans, sent as every service sends them: OpenTelemetry's
    # OTLP/HTTP exporter to the reports service, which stores them in ClickHouse.
    provider = TracerProvider(resource=Resource.create({"service.name": "postline-sender"}))
    exporter = OTLPSpanExporter(endpoint=f"{console_server.otlp}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("browser-test")
    delivery = trace.SpanContext(
        int(HISTORY_TRACE, 16), 0x1111, is_remote=True, trace_flags=trace.TraceFlags(1)
    )
    context = trace.set_span_in_context(trace.NonRecordingSpan(delivery))
    attributes = {SERVER: "default", DELIVERY_ID: HISTORY_ID}
    with tracer.start_as_current_span("postline.sender.attempt", context, attributes=attributes):
        pass
    with tracer.start_as_current_span("postline.scheduler.result", context, attributes=attributes):
        pass
    provider.shutdown()
    poll_until(
        lambda: console_server.api_get(f"/api/v1/traces/{HISTORY_TRACE}").status_code == 200,
        "the spans stored",
    )

    page = log_in(browser, console_server, "admin@example.test", "admin")
    page.goto(f"/deliveries/{HISTORY_ID}")
    page.wait_for_selector("#trace[data-drawn='true']")
    assert page.locator("#trace svg rect").count() == 2
    drawn = page.locator("#trace svg").inner_html()
    assert "postline.sender.attempt" in drawn and "postline.scheduler.result" in drawn
    shoot(page, "delivery-trace")
    page.context.close()


def test_csv_download_is_the_api_export_byte_for_byte(admin: Any, console_server: Console) -> None:
    page = admin
    query = {"start": console_server.start, "end": console_server.end}
    # every server: one of them has csv_download off, so there is no Download button
    page.goto("/errors?" + urlencode(query))
    assert page.get_by_role("link", name="Download").count() == 0
    page.locator("aside.scope").get_by_role("link", name="campaigns").click()
    page.wait_for_url(re.compile(r"server=campaigns"))
    assert page.get_by_role("link", name="Download").count() == 0
    page.locator("aside.scope").get_by_role("link", name="default", exact=True).click()
    page.wait_for_url(re.compile(r"server=default"))
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    downloaded = open(info.value.path(), "rb").read()
    api = console_server.api_get(
        "/api/v1/errors.csv", **query, server="default", tz="Asia/Tokyo"
    ).content
    assert downloaded == api
    assert downloaded.count(b"\n") == 1 + FAILED  # every match, not only 100


def canvas_drawn(page: Any) -> bool:
    return bool(
        page.evaluate(
            """() => {
              const c = document.getElementById('chart');
              if (!c || c.dataset.drawn !== 'true' || !c.width || !c.height) return false;
              const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
              return false;
            }"""
        )
    )


CHART_PAGES = [
    ("/graphs/errors", "error-graph"),
    ("/graphs/deliveries", "delivery-graph"),
    ("/graphs/deliveries?interval=hour", "delivery-graph-hourly"),
    ("/graphs/domains", "domains"),
    ("/stats/daily", "stats-daily"),
    ("/stats/monthly", "stats-monthly"),
    ("/stats/days-of-month", "stats-days-of-month"),
    ("/stats/days-of-week", "stats-days-of-week"),
    ("/stats/hours", "stats-hours"),
    ("/stats/mx-hosts", "stats-mx-hosts"),
    ("/stats/senders", "stats-senders"),
    ("/stats/reply-codes", "stats-reply-codes"),
]


@pytest.mark.parametrize(("path", "name"), CHART_PAGES)
def test_every_chart_is_drawn_from_the_data(
    admin: Any, console_server: Console, path: str, name: str
) -> None:
    page = admin
    sep = "&" if "?" in path else "?"
    page.goto(f"{path}{sep}start={console_server.start}&end={console_server.end}")
    poll_until(lambda: canvas_drawn(page), f"the chart of {path} to be drawn", timeout=15)
    table = page.locator("table").inner_text()
    assert re.search(r"\b[1-9]\d*\b", table), "the table holds the seeded counts"
    shoot(page, name)


def test_error_graph_for_one_domain(admin: Any, console_server: Console) -> None:
    page = admin
    page.goto(f"/graphs/errors?start={console_server.start}&end={console_server.end}")
    page.get_by_label("Destination domain").fill("docomo.ne.jp")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"domain=docomo.ne.jp"))
    poll_until(lambda: canvas_drawn(page), "the domain's error chart")
    counts = [int(c) for c in span_texts(page, "table tbody td.num")]
    assert sum(counts) == len(range(3, FAILED, 5))  # every fifth failure went to docomo


def test_live_view_updates_by_itself(admin: Any, console_server: Console) -> None:
    page = admin
    rows = "#live tbody tr:not(.empty-row)"  # not the placeholder of an empty day
    # counted on both sides of each page read: midnight in Tokyo may pass between them
    before = console_server.live_rows()
    page.goto("/live")
    assert page.locator(rows).count() in {before, console_server.live_rows()}
    shoot(page, "live")
    console_server.publish(
        [_delivery(7777, events_pb2.DELIVERY_STATUS_QUEUED, 0.0, "fresh@live.test",
                   delivery_id="d-live")]
    )  # fmt: skip
    before = console_server.live_rows(extra=1)
    page.wait_for_selector("#live a:text('fresh@live.test')", timeout=30_000)
    assert page.locator(rows).count() in {before, console_server.live_rows(extra=1)}


def test_settings_show_the_policy_and_no_secret(admin: Any) -> None:
    page = admin
    page.goto("/settings")
    text = page.locator("main").inner_text()
    assert "Server default" in text and "Server campaigns" in text
    assert "jp-mobile" in text and "600/min" in text and "21:00-08:00" in text
    assert "archive@example.test" in text and "Asia/Tokyo" in text
    html = page.content()
    assert "argon2" not in html and "POSTLINE_TEST_TOTP" not in html
    shoot(page, "settings")


def test_suppressions_add_and_remove(admin: Any) -> None:
    page = admin
    page.goto("/suppressions")
    page.get_by_label("Address", exact=True).fill("Blocked@Example.jp")
    page.locator("#add-server").select_option("default")
    page.get_by_label("Reason (optional)").fill("asked by the customer")
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_url(re.compile(r"done=suppression_added"))
    assert page.get_by_role("status").inner_text().startswith("The address was added")
    assert page.get_by_role("cell", name="blocked@example.jp", exact=True).is_visible()
    shoot(page, "suppressions")
    page.get_by_role("button", name="Remove blocked@example.jp").click()
    page.wait_for_url(re.compile(r"done=suppression_removed"))
    poll_until(
        lambda: page.reload()
        and page.get_by_role("cell", name="blocked@example.jp", exact=True).count() == 0,
        "the address to leave the list",
    )


def test_viewer_reads_reports_but_cannot_change(viewer: Any, console_server: Console) -> None:
    page = viewer
    page.goto("/suppressions")
    assert page.get_by_role("button", name="追加").count() == 0  # no Add form
    assert (
        page.get_by_role("link", name="アカウント", exact=True).count() == 0
    )  # no Accounts in the menu
    response = page.goto("/accounts")
    assert response.status == 403
    assert "管理者のみ" in page.locator("main").inner_text()
    # a change posted anyway (with the session's own token) is refused
    token = page.evaluate("() => document.querySelector('input[name=csrf_token]').value")
    status = page.evaluate(
        """async (token) => (await fetch('/suppressions', {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: new URLSearchParams({address: 'x@a.test', csrf_token: token})})).status""",
        token,
    )
    assert status == 403
    api = page.evaluate(
        """async (token) => (await fetch('/api/v1/suppressions', {method: 'POST',
             headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token},
             body: JSON.stringify({address: 'x@a.test'})})).status""",
        token,
    )
    assert api == 403


def test_japanese_pages_render(viewer: Any, console_server: Console) -> None:
    page = viewer
    query = urlencode({"start": console_server.start, "end": console_server.end})
    page.goto(f"/errors?{query}")
    assert page.locator("html").get_attribute("lang") == "ja"
    assert page.get_by_role("heading", name="エラーログ").is_visible()
    assert page.get_by_label("開始日").input_value() == console_server.start
    assert "最初の100件を表示しています" in page.locator("main").inner_text()
    # dates in the account's time zone (Asia/Tokyo)
    first = page.locator("section.results tbody tr td").first.inner_text()
    api_row = console_server.api_get(
        "/api/v1/errors", start=console_server.start, end=console_server.end, tz="Asia/Tokyo"
    ).json()["results"][0]
    assert first == api_row["created"][:10] + " " + api_row["created"][11:19]
    shoot(page, "errors-ja")
    for path, name, heading in (
        (f"/graphs/errors?{query}", "error-graph-ja", "エラーグラフ"),
        (f"/stats/days-of-week?{query}", "stats-ja", "統計: 曜日別"),
        ("/live", "live-ja", "ライブ"),
        ("/settings", "settings-ja", "設定"),
        ("/account", "my-account-ja", "マイアカウント"),
    ):
        page.goto(path)
        assert page.get_by_role("heading", name=heading).is_visible(), heading
        shoot(page, name)


def test_wrong_password_wrong_code_and_missing_csrf_are_refused(
    browser: Any, console_server: Console
) -> None:
    context = browser.new_context(base_url=console_server.base)
    page = context.new_page()
    page.goto("/login")
    shoot(page, "login")
    page.get_by_label("Email").fill("admin@example.test")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    # a form posted without its token (as another site would) is refused
    page.evaluate("() => document.querySelector('input[name=csrf_token]').remove()")
    page.get_by_label("Password").fill("admin")
    page.get_by_role("button", name="Log in").click()
    assert "security token" in page.get_by_role("alert").inner_text()
    assert page.url.endswith("/login")

    page.goto("/login")
    page.get_by_label("Email").fill("totp@example.test")
    page.get_by_label("Password").fill("admin")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/login/code"))
    shoot(page, "login-code")
    page.get_by_label("One-time code").fill("000000")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong one-time code."
    page.get_by_label("One-time code").fill(pyotp.TOTP(TOTP_SECRET).now())
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/errors"))
    context.close()


def test_accounts_two_factor_set_up_and_the_operation_log(
    browser: Any, admin: Any, console_server: Console
) -> None:
    page = admin
    page.goto("/accounts")
    shoot(page, "accounts")
    page.get_by_label("Email").fill("ops@example.test")
    page.get_by_label("Initial password").fill("ops-password-1")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_label("Language").select_option("en")
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"done=account_created"))
    assert page.get_by_role("cell", name="ops@example.test", exact=True).is_visible()

    ops = log_in(browser, console_server, "ops@example.test", "ops-password-1")
    ops.goto("/account")
    assert ops.locator(".qr svg").count() == 1  # the key as a QR code
    secret = ops.locator("#totp-secret").inner_text()
    shoot(ops, "my-account")
    ops.get_by_label("One-time code").fill(pyotp.TOTP(secret).now())
    ops.get_by_role("button", name="Turn on").click()
    ops.wait_for_url(re.compile(r"done=totp_enabled"))
    ops.get_by_role("button", name="Log out").click()
    ops.wait_for_url(re.compile(r"/login"))
    ops.context.close()

    # the administrator resets it, and sees everything in the operation log
    page.goto("/accounts")
    page.get_by_role("button", name="Reset two-factor ops@example.test").click()
    page.wait_for_url(re.compile(r"done=totp_reset"))
    page.goto("/operations")
    text = page.locator("main").inner_text()
    for expected in ("created account", "turned on two-factor", "reset two-factor",
                     "logged in", "logged out", "failed log-in", "ops@example.test"):  # fmt: skip
        assert expected in text, expected
    assert "127.0.0.1" in text
    shoot(page, "operations")


def test_pages_are_keyboard_usable_and_fit_a_phone(admin: Any, console_server: Console) -> None:
    page = admin
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/errors", "/deliveries", "/graphs/deliveries", "/suppressions", "/accounts"):
        page.goto(path)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
                 .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                 .map((e) => e.name)"""
        )
        assert unlabelled == [], f"{path}: fields without a label: {unlabelled}"
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{path} is wider than the phone's screen"
    # the skip link and the menu are reachable with the keyboard alone
    page.goto("/errors")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to the content"
    page.set_viewport_size({"width": 1280, "height": 900})
