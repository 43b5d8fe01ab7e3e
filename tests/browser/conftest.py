"""The console in a real browser: Debian's chromium driven by Python playwright.

One reports process and one bounce process for the module (the real services, started
as ``make run`` starts them, on ports shifted by ``POSTLINE_TEST_PORT_OFFSET``, a private
RabbitMQ vhost and a temporary data directory), seeded once through the real ingest path:
events published to RabbitMQ, written by reports to ClickHouse. Screenshots of every page at
1280 px and 390 px go to ``build/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import httpx
import pyotp
import pytest
import yaml

from postline.common.broker import Broker, Topology
from postline.common.broker.topology import EXCHANGE, SUPPRESSION_KEY
from postline.common.timeutil import to_timestamp
from postline.devstack import Ports, Stack
from postline.reports.history import LIVE_ROWS
from postline.v1 import events_pb2
from tests.conftest import DEV_POLICY, ROOT
from tests.polling import poll_until

PORT_OFFSET = int(os.environ.get("POSTLINE_TEST_PORT_OFFSET", "11000"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "build" / "screenshots"
WIDTHS = {"desktop": 1280, "phone": 390}
TOTP_SECRET = pyotp.random_base32()
TOKYO = ZoneInfo("Asia/Tokyo")

# The seeded data set: errors of every status on many domains (more than 100 of them), the
# deliveries behind them and successful ones, and one delivery with a full history.
ERROR_STATUSES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99)
DOMAINS = ("a.test", "b.test", "example.jp", "docomo.ne.jp", "gmail.test")
FAILED = 121
SUCCEEDED = 60
HISTORY_ID = "d-history"
HISTORY_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def shifted_policy(path: Path, ports: Ports) -> Path:
    """The dev policy (simulator route shifted), a second server without CSV download, and an
    administrator with a TOTP secret (``{env}``: given to the reports process)."""
    policy = yaml.safe_load(DEV_POLICY.read_text())
    policy["servers"]["default"]["routes"][0]["to"] = ports.simulator
    policy["servers"]["campaigns"] = {
        "return_path_domain": "bounce.campaigns.test",
        "csv_download": False,
        "api_users": [],
    }
    admin = policy["console"]["accounts"][0]
    policy["console"]["accounts"].append(
        {**admin, "email": "totp@example.test", "totp": {"env": "POSTLINE_TEST_TOTP"}}
    )
    path.write_text(yaml.safe_dump(policy, allow_unicode=True))
    return path


def _at(minutes_ago: float, now: datetime | None = None) -> Any:
    return to_timestamp(((now or datetime.now(UTC)) - timedelta(minutes=minutes_ago)).timestamp())


def _delivery(
    n: int,
    status: int,
    minutes_ago: float,
    recipient: str,
    now: datetime | None = None,
    **extra: Any,
) -> events_pb2.DeliveryEvent:
    """One delivery event; ``now`` fixes the clock so that every event of a delivery carries
    the same accepted time, as the services' events do (the delivery log is keyed by it)."""
    delivery_id = extra.pop("delivery_id", f"d-{n:04d}")
    return events_pb2.DeliveryEvent(
        event_id=f"{delivery_id}-{status}-{extra.get('attempt', 0)}",
        delivery_id=delivery_id,
        message_id=f"m-{n:04d}",
        header_message_id=f"<m-{n:04d}@app.example.test>",
        status=status,  # type: ignore[arg-type]
        at=_at(minutes_ago, now),
        accepted_at=_at(extra.pop("accepted_ago", minutes_ago), now),
        server="default",
        api_user="dev",
        envelope_from=extra.pop("envelope_from", "app@example.test"),
        recipient=recipient,
        recipient_domain=recipient.rsplit("@", 1)[1],
        subject=extra.pop("subject", f"Order {n}"),
        api_data=f"order={n}",
        trace_id=extra.pop("trace_id", f"{n:032x}"),
        **extra,
    )


def seed_events() -> list[Any]:
    events: list[Any] = []
    now = datetime.now(UTC)
    q, deferred, ok, failed = 1, 2, 3, 4
    for n in range(FAILED):
        status = ERROR_STATUSES[n % len(ERROR_STATUSES)]
        rcpt = f"user{n:03d}@{DOMAINS[n % len(DOMAINS)]}"
        ago = 5 + n * 0.5
        reply = f"550 5.1.1 <{rcpt}>: user unknown (case {n})"
        events.append(_delivery(n, q, ago + 0.1, rcpt, now))
        events.append(
            _delivery(
                n, failed, ago, rcpt, now, accepted_ago=ago + 0.1, attempt=1, reply_code=550,
                enhanced_status="5.1.1", reason=reply, mx_host=f"mx{n % 3}.example.net",
                error_status=status, return_path=f"bounce-d-{n:04d}@bounce.example.test",
            )
        )  # fmt: skip
        events.append(
            events_pb2.ErrorClassified(
                event_id=f"x-{n:04d}",
                delivery_id=f"d-{n:04d}",
                message_id=f"m-{n:04d}",
                header_message_id=f"<m-{n:04d}@app.example.test>",
                return_path=f"bounce-d-{n:04d}@bounce.example.test",
                created=_at(ago, now),
                status=status,  # type: ignore[arg-type]
                to=rcpt,
                subject=f"Order {n}",
                api_data=f"order={n}",
                reason=reply,
                source=events_pb2.ERROR_SOURCE_SMTP_REPLY,
                permanent=True,
                reply_code=550,
                enhanced_status="5.1.1",
                server="default",
                api_user="dev",
                trace_id=f"{n:032x}",
                **{"from": "app@example.test"},
            )
        )
    for i in range(SUCCEEDED):
        n = 1000 + i
        rcpt = f"reader{i:03d}@{DOMAINS[i % len(DOMAINS)]}"
        ago = 3 + i * 0.7
        events.append(_delivery(n, q, ago + 0.1, rcpt, now, envelope_from="news@example.test"))
        events.append(
            _delivery(
                n, ok, ago, rcpt, now, accepted_ago=ago + 0.1, attempt=1, reply_code=250,
                enhanced_status="2.0.0", reason="250 2.0.0 Ok", mx_host=f"mx{i % 3}.example.net",
                envelope_from="news@example.test",
            )
        )  # fmt: skip
    history = {"delivery_id": HISTORY_ID, "trace_id": HISTORY_TRACE, "subject": "History"}
    rcpt = "greylist@history.test"
    events += [
        _delivery(9000, q, 2.0, rcpt, now, **history),
        _delivery(
            9000, deferred, 1.9, rcpt, now, accepted_ago=2.0, attempt=1, reply_code=451,
            enhanced_status="4.7.1", reason="451 4.7.1 greylisted, try later",
            mx_host="mx.history.test", next_attempt_at=_at(1.0, now), **history,
        ),
        _delivery(
            9000, ok, 1.0, rcpt, now, accepted_ago=2.0, attempt=2, reply_code=250,
            enhanced_status="2.0.0", reason="250 2.0.0 queued", mx_host="mx.history.test",
            return_path=f"bounce-{HISTORY_ID}@bounce.example.test", **history,
        ),
    ]  # fmt: skip
    return events


def accepted_at(events: list[Any]) -> dict[str, datetime]:
    return {
        event.delivery_id: event.accepted_at.ToDatetime(tzinfo=UTC)
        for event in events
        if isinstance(event, events_pb2.DeliveryEvent)
    }


async def _publish(amqp_url: str, events: list[Any]) -> None:
    broker = Broker(amqp_url, Topology(2))
    await broker.connect()
    try:
        await broker.publish_events(events)
    finally:
        await broker.close()


async def _a_scheduler_queue(amqp_url: str) -> None:
    """A queue for suppression changes, as schedulers have: bounce publishes no change that
    nobody would get. (No scheduler runs in this suite; the queue goes with the vhost.)"""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue("test.suppression-changes", durable=True)
        await queue.bind(EXCHANGE, routing_key=SUPPRESSION_KEY)
    finally:
        await connection.close()


def in_thread(coro: Any) -> Any:
    """Run a coroutine on a thread of its own: playwright's sync API keeps an event loop
    running on the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


def publish(amqp_url: str, events: list[Any]) -> None:
    """Publish events to reports through RabbitMQ (the real ingest path)."""
    in_thread(_publish(amqp_url, events))


@dataclass
class Console:
    base: str
    api: str  # the reports API (same server)
    otlp: str  # the reports service's span receiver (OTLP/HTTP)
    amqp_url: str
    start: str  # yesterday in Tokyo: every seeded row is inside start..end
    end: str
    logs: Path
    accepted: dict[str, datetime]  # delivery id -> when it was accepted, for the seeded ones
    shots: list[str] = field(default_factory=list)

    def live_rows(self, extra: int = 0) -> int:
        """The rows the live view shows now: the newest ``LIVE_ROWS`` of the seeded deliveries
        (and ``extra`` fresh ones) accepted today in Tokyo, the accounts' time zone. Near
        midnight some of the seed is yesterday's."""
        midnight = datetime.combine(datetime.now(TOKYO).date(), time(), TOKYO)
        return min(LIVE_ROWS, extra + sum(1 for at in self.accepted.values() if at >= midnight))

    def api_get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(
            f"{self.base}{path}", params=params, auth=("dev", "dev-secret"), timeout=30
        )

    def publish(self, events: list[Any]) -> None:
        publish(self.amqp_url, events)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed (apt-get install chromium fonts-noto-cjk)")
    vhost = f"postline-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    tmp = tmp_path_factory.mktemp("console")
    ports = Ports(offset=PORT_OFFSET)
    stack = Stack(
        policy=shifted_policy(tmp / "postline.yaml", ports),
        data_dir=tmp / "var",
        amqp_url=amqp_url,
        ports=ports,
        shards=2,
        log_dir=tmp / "logs",
        extra_env={"POSTLINE_TEST_TOTP": TOTP_SECRET},
    )
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        stack.migrate()
        (tmp / "logs").mkdir()
        for service in ("bounce", "reports"):
            log = open(tmp / "logs" / f"{service}.log", "ab")
            processes[service] = subprocess.Popen(
                [sys.executable, "-m", f"postline.{service}"],
                env=stack.env(service),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for service in ("bounce", "reports"):
            url = f"http://{ports.health(service)}/readyz"
            poll_until(
                lambda url=url, service=service: processes[service].poll() is None and _ready(url),
                f"{service} to be ready",
                timeout=90,
            )
        in_thread(_a_scheduler_queue(amqp_url))  # the services declared the exchange
        events = seed_events()
        publish(amqp_url, events)
        today = datetime.now(TOKYO).date()
        console = Console(
            base=f"http://{ports.reports}",
            api=f"http://{ports.reports}",
            otlp=f"http://{ports.otlp}",
            amqp_url=amqp_url,
            start=(today - timedelta(days=1)).isoformat(),
            end=today.isoformat(),
            logs=tmp / "logs",
            accepted=accepted_at(events),
        )

        def written() -> bool:
            daily = console.api_get(
                "/api/v1/stats/daily", start=console.start, end=console.end, tz="Asia/Tokyo"
            ).json()
            history = console.api_get(f"/api/v1/deliveries/{HISTORY_ID}")
            return (
                sum(row["errors"] for row in daily["rows"]) == FAILED
                and history.status_code == 200
                and history.json()["status"] == "succeeded"
            )

        poll_until(written, "the seeded events to be written", timeout=60)
        if SCREENSHOTS.exists():
            shutil.rmtree(SCREENSHOTS)
        SCREENSHOTS.mkdir(parents=True)
        yield console
    except BaseException:
        for log in sorted((tmp / "logs").glob("*.log")):
            print(f"==== {log.name}\n{log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        for process in processes.values():
            process.terminate()
        for name, process in processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop; killed")
                process.kill()
                process.wait()
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def shoot(page: Any, name: str) -> None:
    """A full-page screenshot of the page at both widths."""
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})


def log_in(browser: Any, console: Console, email: str, password: str) -> Any:
    """A browser page logged in as ``email`` (a context of its own: its own cookies)."""
    context = browser.new_context(
        base_url=console.base, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    page = context.new_page()
    page.goto("/login")
    page.get_by_label(re.compile("^(Email|メールアドレス)$")).fill(email)
    page.get_by_label(re.compile("^(Password|パスワード)$")).fill(password)
    page.get_by_role("button", name=re.compile("^(Log in|ログイン)$")).click()
    page.wait_for_url(re.compile(r"/(errors|login/code)"))
    return page
