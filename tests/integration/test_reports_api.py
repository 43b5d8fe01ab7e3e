"""The reports API over real sockets (HTTP and gRPC) against real ClickHouse (embedded chdb).

One data set for the module: a day with one delivery in each state (and an error), a day with
105 deliveries and 105 errors (the 100 cap), and another server's delivery that no query of
API user ``dev`` may see.
"""

from __future__ import annotations

import asyncio
import csv
import io
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest

from postline.common.policy import hash_secret, parse_policy
from postline.common.runtime import HttpServer
from postline.common.timeutil import to_timestamp
from postline.reports import csv_export
from postline.reports.grpc_api import GrpcServer
from postline.reports.http import create_app
from postline.reports.ingest import Ingest
from postline.reports.queries import ReportQueries
from postline.reports.store import Store
from postline.v1 import events_pb2, reports_pb2, reports_pb2_grpc
from tests.integration.reports_support import migrated
from tests.ports import free_port

DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
BULK_DAY = DAY - timedelta(days=1)
D = DAY.date().isoformat()
B = BULK_DAY.date().isoformat()
TRICKY_SUBJECT = 'Hello, "world"\nsecond line'
JP_SUBJECT = "ご注文ありがとうございます"

POLICY = """
version: 1
servers:
  default:
    return_path_domain: bounce.example.test
    api_users:
      - {{name: dev, secret: {{argon2: "{dev}"}}}}
      - {{name: app, secret: {{argon2: "{app}"}}}}
  other:
    return_path_domain: bounce.other.test
    csv_download: false
    api_users:
      - {{name: other, secret: {{argon2: "{other}"}}}}
"""


def delivery_event(
    event_id: str,
    delivery_id: str,
    status: int,
    at: datetime,
    accepted: datetime,
    recipient: str,
    **fields: Any,
) -> events_pb2.DeliveryEvent:
    event = events_pb2.DeliveryEvent(
        event_id=event_id,
        delivery_id=delivery_id,
        message_id=fields.pop("message_id", f"m-{delivery_id}"),
        header_message_id=f"<{delivery_id}@mail.example.test>",
        status=status,  # type: ignore[arg-type]
        at=to_timestamp(at.timestamp()),
        accepted_at=to_timestamp(accepted.timestamp()),
        server=fields.pop("server", "default"),
        api_user=fields.pop("api_user", "dev"),
        envelope_from=fields.pop("envelope_from", "app@example.test"),
        recipient=recipient,
        recipient_domain=recipient.rsplit("@", 1)[1].lower(),
        subject=fields.pop("subject", "hello"),
        trace_id=fields.pop("trace_id", f"trace-{delivery_id}"),
        **fields,
    )
    return event


def error_event(
    event_id: str, delivery_id: str, status: int, created: datetime, recipient: str, **fields: Any
) -> events_pb2.ErrorClassified:
    return events_pb2.ErrorClassified(
        event_id=event_id,
        delivery_id=delivery_id,
        message_id=f"m-{delivery_id}",
        header_message_id=f"<{delivery_id}@mail.example.test>",
        return_path=fields.pop("return_path", f"bounce-{delivery_id}@bounce.example.test"),
        created=to_timestamp(created.timestamp()),
        status=status,  # type: ignore[arg-type]
        to=recipient,
        subject=fields.pop("subject", "hello"),
        reason=fields.pop("reason", "550 5.1.1 user unknown"),
        source=events_pb2.ERROR_SOURCE_SMTP_REPLY,
        permanent=True,
        server=fields.pop("server", "default"),
        api_user=fields.pop("api_user", "dev"),
        trace_id=f"trace-{delivery_id}",
        **{"from": "app@example.test"},
        **fields,
    )


Q, DEF, OK, FAIL = (
    events_pb2.DELIVERY_STATUS_QUEUED,
    events_pb2.DELIVERY_STATUS_DEFERRED,
    events_pb2.DELIVERY_STATUS_SUCCEEDED,
    events_pb2.DELIVERY_STATUS_FAILED,
)


def data_set() -> list[Any]:
    t = DAY + timedelta(hours=10)
    s = timedelta(seconds=1)
    events: list[Any] = [
        delivery_event("e-ok-1", "d-ok", Q, t, t, "Taro@Example.JP", subject=TRICKY_SUBJECT),
        delivery_event(
            "e-ok-2", "d-ok", OK, t + 2 * s, t, "Taro@Example.JP", subject=TRICKY_SUBJECT,
            attempt=1, reply_code=250, enhanced_status="2.0.0", reason="250 ok",
            mx_host="mx1.example.jp", api_data="order=1,2",
        ),
        delivery_event("e-fail-1", "d-fail", Q, t + 300 * s, t + 300 * s, "user-unknown@b.test"),
        delivery_event(
            "e-fail-2", "d-fail", FAIL, t + 301 * s, t + 300 * s, "user-unknown@b.test",
            attempt=1, reply_code=550, enhanced_status="5.1.1", reason="550 5.1.1 unknown",
            mx_host="mx.b.test", error_status=2,
        ),
        error_event("x-fail", "d-fail", 2, t + 302 * s, "user-unknown@b.test"),
        # the deferral is recorded before the queued event arrives: order of arrival is no
        # order of events
        delivery_event(
            "e-def-2", "d-def", DEF, t + 601 * s, t + 600 * s, "greylist@c.test",
            attempt=1, reply_code=451, enhanced_status="4.7.1", reason="451 4.7.1 later",
            mx_host="mx.c.test", next_attempt_at=to_timestamp((t + 1200 * s).timestamp()),
        ),
        delivery_event("e-def-1", "d-def", Q, t + 600 * s, t + 600 * s, "greylist@c.test"),
        delivery_event("e-q-1", "d-q", Q, t + 900 * s, t + 900 * s, "waiting@d.test"),
        delivery_event(
            "e-jp-1", "d-jp", Q, t + 1200 * s, t + 1200 * s, "hanako@example.jp",
            subject=JP_SUBJECT, api_user="app", envelope_from="shop@example.test",
        ),
        delivery_event(
            "e-jp-2", "d-jp", OK, t + 1201 * s, t + 1200 * s, "hanako@example.jp",
            subject=JP_SUBJECT, api_user="app", envelope_from="shop@example.test",
            attempt=1, reply_code=250, enhanced_status="2.0.0", mx_host="mx1.example.jp",
        ),
        # another server: invisible to dev
        delivery_event(
            "e-other-1", "d-other", Q, t, t, "taro@other.test", server="other", api_user="other"
        ),
        delivery_event(
            "e-other-2", "d-other", FAIL, t + s, t, "taro@other.test", server="other",
            api_user="other", reply_code=550, enhanced_status="5.1.1", error_status=2,
        ),
        error_event(
            "x-other", "d-other", 2, t + s, "taro@other.test", server="other", api_user="other"
        ),
    ]  # fmt: skip
    # The bulk day: 105 deliveries and 105 errors, all at the same instant (ties broken by id).
    b = BULK_DAY + timedelta(hours=9)
    for i in range(105):
        rcpt = f"bulk{i:03d}@full.test"
        events.append(delivery_event(f"e-b{i:03d}-1", f"d-b{i:03d}", Q, b, b, rcpt))
        events.append(
            delivery_event(
                f"e-b{i:03d}-2", f"d-b{i:03d}", OK, b + s, b, rcpt, reply_code=250, attempt=1
            )
        )
        events.append(
            error_event(f"x-b{i:03d}", f"d-b{i:03d}", 5, b + 2 * s, rcpt, reason="552 full")
        )
    return events


def as_messages(events: Sequence[Any]) -> list[tuple[str, bytes]]:
    """Events as the broker delivers them to the ingest: type name and bytes."""
    return [(e.DESCRIPTOR.full_name, e.SerializeToString()) for e in events]


class Served:
    """The reports HTTP and gRPC servers on their own event loop thread, as in the service."""

    def __init__(self, queries: ReportQueries) -> None:
        self.queries = queries
        self.ingest = Ingest(queries.store)
        self.http_listen = f"127.0.0.1:{free_port()}"
        self.grpc_listen = f"127.0.0.1:{free_port()}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.http = HttpServer(create_app(queries, ready=lambda: True), self.http_listen)
        self.grpc = GrpcServer(queries, self.grpc_listen)
        self.call(self.http.start())
        self.call(self.grpc.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.call(self.grpc.stop(0))
        self.call(self.http.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    dsn = migrated(tmp_path_factory.mktemp("reports-api") / "ch")
    policy = parse_policy(
        POLICY.format(
            dev=hash_secret("dev-secret"),
            app=hash_secret("app-secret"),
            other=hash_secret("other-secret"),
        )
    )
    store = Store(dsn)
    asyncio.run(Ingest(store).write(as_messages(data_set())))
    served = Served(ReportQueries(store, policy))
    try:
        yield served
    finally:
        served.close()
        store.close()


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://{served.http_listen}",
        headers={"Authorization": "Bearer dev:dev-secret"},
        timeout=30,
    ) as client:
        yield client


def get(http: httpx.Client, path: str, **params: str) -> Any:
    response = http.get(path, params={"start": D, "end": D, **params})
    assert response.status_code == 200, response.text
    return response.json()


def rcpts(answer: dict[str, Any]) -> list[str]:
    return [r["to"] for r in answer["results"]]


# --- search ----------------------------------------------------------------------------------


def test_delivery_search_latest_state_per_delivery_newest_first(http: httpx.Client) -> None:
    answer = get(http, "/api/v1/deliveries")
    assert rcpts(answer) == [
        "hanako@example.jp",
        "waiting@d.test",
        "greylist@c.test",
        "user-unknown@b.test",
        "Taro@Example.JP",
    ]
    assert [r["status"] for r in answer["results"]] == [
        "succeeded", "queued", "deferred", "failed", "succeeded",
    ]  # fmt: skip
    assert answer["total"] == 5 and answer["truncated"] is False and answer["pages"] == 1
    taro = answer["results"][-1]
    assert taro["subject"] == TRICKY_SUBJECT and taro["apiData"] == "order=1,2"
    assert taro["deliveryId"] == "d-ok" and taro["traceId"] == "trace-d-ok"
    assert taro["created"] == (DAY + timedelta(hours=10)).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("queued", ["waiting@d.test"]),
        ("deferred", ["greylist@c.test"]),
        ("succeeded", ["hanako@example.jp", "Taro@Example.JP"]),
        ("failed", ["user-unknown@b.test"]),
    ],
)
def test_delivery_search_by_status(http: httpx.Client, status: str, expected: list[str]) -> None:
    # queued: d-ok, d-fail, d-def, d-jp were queued once too, but moved on
    assert rcpts(get(http, "/api/v1/deliveries", status=status)) == expected


def test_address_is_a_case_insensitive_partial_match(http: httpx.Client) -> None:
    assert rcpts(get(http, "/api/v1/deliveries", address="TARO@example")) == ["Taro@Example.JP"]
    assert rcpts(get(http, "/api/v1/deliveries", address="example.jp")) == [
        "hanako@example.jp",
        "Taro@Example.JP",
    ]
    assert rcpts(get(http, "/api/v1/deliveries", address="%")) == []  # no LIKE wildcards
    assert rcpts(get(http, "/api/v1/errors", address="UNKNOWN@B")) == ["user-unknown@b.test"]


def test_api_user_filter_and_server_scope(http: httpx.Client) -> None:
    assert rcpts(get(http, "/api/v1/deliveries", api_user="app")) == ["hanako@example.jp"]
    assert "taro@other.test" not in rcpts(get(http, "/api/v1/deliveries", address="taro"))
    response = http.get("/api/v1/deliveries", params={"start": D, "end": D, "server": "other"})
    assert response.status_code == 403
    assert response.json()["error"]["field"] == "server"
    other = http.get(
        "/api/v1/deliveries",
        params={"start": D, "end": D},
        headers={"Authorization": "Bearer other:other-secret"},
    ).json()
    assert rcpts(other) == ["taro@other.test"]


def test_error_search_and_error_status_filter(http: httpx.Client) -> None:
    answer = get(http, "/api/v1/errors")
    assert rcpts(answer) == ["user-unknown@b.test"]
    row = answer["results"][0]
    assert row["status"] == 2 and row["reason"] == "550 5.1.1 user unknown"
    assert list(row)[:9] == [
        "created", "status", "from", "to", "messageId", "returnPath", "subject", "apiData",
        "reason",
    ]  # fmt: skip
    assert rcpts(get(http, "/api/v1/errors", error="2")) == ["user-unknown@b.test"]
    assert rcpts(get(http, "/api/v1/errors", error="5")) == []


def test_dates_are_days_of_the_tz(http: httpx.Client) -> None:
    # 10:00 UTC on DAY is 19:00 in Tokyo (same day) and 03:00 in Los Angeles (same day); the
    # Tokyo day after DAY starts at 15:00 UTC on DAY, after every row.
    after = (DAY + timedelta(days=1)).date().isoformat()
    tokyo = get(http, "/api/v1/deliveries", tz="Asia/Tokyo")
    assert len(tokyo["results"]) == 5
    assert tokyo["results"][-1]["created"].endswith("+09:00")
    response = http.get(
        "/api/v1/deliveries", params={"start": after, "end": after, "tz": "Asia/Tokyo"}
    )
    assert response.json()["results"] == []


def test_at_most_100_results_10_per_page(http: httpx.Client) -> None:
    for path in ("/api/v1/deliveries", "/api/v1/errors"):
        first = http.get(path, params={"start": B, "end": B}).json()
        assert first["total"] == 100 and first["truncated"] is True and first["pages"] == 10
        assert len(first["results"]) == 10
        assert first["results"][0]["to"] == "bulk104@full.test"  # same instant: by id, desc
        last = http.get(path, params={"start": B, "end": B, "page": "10"}).json()
        assert last["results"][-1]["to"] == "bulk005@full.test"
        assert http.get(path, params={"start": B, "end": B, "page": "11"}).json()["results"] == []
    both = http.get("/api/v1/deliveries", params={"start": B, "end": D}).json()
    assert both["truncated"] is True and both["results"][0]["to"] == "hanako@example.jp"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/deliveries", {"end": "2026-11-01"}, "start"),
        ("/api/v1/deliveries", {"start": "2026-11-01"}, "end"),
        ("/api/v1/errors", {"start": "2026/11/01", "end": "2026-11-01"}, "start"),
        ("/api/v1/errors", {"start": "2026-11-02", "end": "2026-11-01"}, "end"),
        ("/api/v1/deliveries", {"start": D, "end": D, "status": "bounced"}, "status"),
        ("/api/v1/errors", {"start": D, "end": D, "error": "11"}, "error"),
        ("/api/v1/errors", {"start": D, "end": D, "page": "0"}, "page"),
        ("/api/v1/errors", {"start": D, "end": D, "tz": "Mars/Olympus"}, "tz"),
        ("/api/v1/errors.csv", {"start": D}, "end"),
        ("/api/v1/deliveries.csv", {"start": D, "end": D, "status": "x"}, "status"),
        ("/api/v1/stats/deliveries", {"start": D}, "end"),
        ("/api/v1/stats/deliveries", {"start": D, "end": D, "interval": "week"}, "interval"),
        ("/api/v1/stats/errors", {"start": D, "end": D, "interval": "minute"}, "interval"),
        ("/api/v1/stats/domains", {"start": D, "end": D, "limit": "0"}, "limit"),
        ("/api/v1/stats/daily", {"start": D, "end": "yesterday"}, "end"),
        ("/api/v1/deliveries/live", {"tz": "Nowhere"}, "tz"),
    ],
)
def test_validation_errors(
    http: httpx.Client, path: str, params: dict[str, str], field: str
) -> None:
    response = http.get(path, params=params)
    assert response.status_code == 400, response.text
    body = response.json()["error"]
    assert body["code"] == "invalid_parameter" and body["field"] == field and body["message"]


def test_credentials_are_required(served: Served) -> None:
    url = f"http://{served.http_listen}/api/v1/errors?start={D}&end={D}"
    for headers in ({}, {"Authorization": "Bearer dev:wrong"}, {"Authorization": "Token x"}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    basic = httpx.get(url, auth=("dev", "dev-secret"))
    assert basic.status_code == 200


# --- CSV ---------------------------------------------------------------------------------------


def test_errors_csv_bytes(http: httpx.Client) -> None:
    response = http.get("/api/v1/errors.csv", params={"start": D, "end": D})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    created = (DAY + timedelta(hours=10, seconds=302)).isoformat(timespec="milliseconds")
    assert response.content == (
        b"created,status,from,to,messageId,returnPath,subject,apiData,reason\n"
        + f"{created.replace('+00:00', 'Z')},2,app@example.test,user-unknown@b.test,"
        "<d-fail@mail.example.test>,bounce-d-fail@bounce.example.test,hello,,"
        "550 5.1.1 user unknown\n".encode()
    )


def test_deliveries_csv_quotes_and_utf8(http: httpx.Client) -> None:
    body = http.get("/api/v1/deliveries.csv", params={"start": D, "end": D}).content
    assert b"\r" not in body and not body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8")
    assert text.startswith(
        "created,status,from,to,messageId,returnPath,subject,apiData,reason,deliveryId\n"
    )
    assert f",{JP_SUBJECT},".encode() in body
    # comma, quote and line break inside a field: quoted, quotes doubled, the break kept
    assert ',"Hello, ""world""\nsecond line","order=1,2",250 ok,d-ok\n' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 6 and rows[-1][6] == TRICKY_SUBJECT and rows[-1][9] == "d-ok"


def test_csv_has_every_match_across_chunks(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks: pagination must neither skip nor repeat rows sharing one instant.
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 7)
    for path in ("/api/v1/errors.csv", "/api/v1/deliveries.csv"):
        text = http.get(path, params={"start": B, "end": B}).text
        rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
        assert [r[3] for r in rows] == [f"bulk{i:03d}@full.test" for i in reversed(range(105))]
    filtered = http.get("/api/v1/errors.csv", params={"start": B, "end": D, "address": "bulk01"})
    assert len(filtered.text.splitlines()) == 1 + 10


def test_csv_download_can_be_disabled(served: Served) -> None:
    response = httpx.get(
        f"http://{served.http_listen}/api/v1/errors.csv",
        params={"start": D, "end": D},
        headers={"Authorization": "Bearer other:other-secret"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


# --- statistics --------------------------------------------------------------------------------


def stat(http: httpx.Client, name: str, **params: str) -> dict[str, Any]:
    return get(http, f"/api/v1/stats/{name}", **params)  # type: ignore[no-any-return]


def by_key(answer: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {row[answer["key"]]: row for row in answer["rows"]}


def test_delivery_graph_by_hour_and_day(http: httpx.Client) -> None:
    hourly = stat(http, "deliveries", interval="hour")
    assert hourly["columns"] == ["queued", "deferred", "succeeded", "failed"]
    assert len(hourly["rows"]) == 24  # every hour, zeros included
    ten = by_key(hourly)[f"{D}T10:00:00Z"]
    assert (ten["queued"], ten["deferred"], ten["succeeded"], ten["failed"]) == (5, 1, 2, 1)
    assert sum(r["queued"] for r in hourly["rows"]) == 5
    daily = stat(http, "deliveries", start=B, end=D)
    assert daily["interval"] == "day"
    assert [(r["time"], r["queued"], r["succeeded"]) for r in daily["rows"]] == [
        (B, 105, 105),
        (D, 5, 2),
    ]
    tokyo = stat(http, "deliveries", interval="hour", tz="Asia/Tokyo")
    assert by_key(tokyo)[f"{D}T19:00:00+09:00"]["queued"] == 5


def test_domains_mx_senders_reply_codes(http: httpx.Client) -> None:
    domains = stat(http, "domains")
    assert domains["rows"][0] == {
        "domain": "example.jp", "queued": 2, "deferred": 0, "succeeded": 2, "failed": 0,
    }  # fmt: skip
    assert {r["domain"] for r in domains["rows"]} == {"example.jp", "b.test", "c.test", "d.test"}
    assert len(stat(http, "domains", limit="2")["rows"]) == 2
    mx = stat(http, "mx-hosts")
    assert mx["rows"][0] == {"mx": "mx1.example.jp", "deferred": 0, "succeeded": 2, "failed": 0}
    senders = by_key(stat(http, "senders"))
    assert senders["shop@example.test"]["succeeded"] == 1
    assert senders["app@example.test"]["queued"] == 4
    replies = by_key(stat(http, "reply-codes"))
    assert replies == {
        "250 2.0.0": {"reply": "250 2.0.0", "replies": 2},
        "451 4.7.1": {"reply": "451 4.7.1", "replies": 1},
        "550 5.1.1": {"reply": "550 5.1.1", "replies": 1},
    }
    assert stat(http, "senders", api_user="app")["rows"][0]["sender"] == "shop@example.test"


def test_error_graph_overall_for_a_domain_and_over_time(http: httpx.Client) -> None:
    overall = stat(http, "errors", start=B, end=D)
    assert by_key(overall)[2] == {"status": 2, "label": "Unknown user", "errors": 1}
    assert by_key(overall)[5]["errors"] == 105
    assert len(overall["rows"]) == 11  # every error status
    domain = by_key(stat(http, "errors", start=B, end=D, domain="B.test"))
    assert domain[2]["errors"] == 1 and domain[5]["errors"] == 0
    series = stat(http, "errors", start=B, end=D, interval="day")
    assert series["columns"][:2] == ["1", "2"]
    assert [(r["time"], r["2"], r["5"]) for r in series["rows"]] == [(B, 0, 105), (D, 1, 0)]


def test_daily_monthly_and_calendar_summaries(http: httpx.Client) -> None:
    daily = stat(http, "daily", start=B, end=D)
    assert daily["rows"] == [
        {"day": B, "queued": 105, "deferred": 0, "succeeded": 105, "failed": 0, "errors": 105},
        {"day": D, "queued": 5, "deferred": 1, "succeeded": 2, "failed": 1, "errors": 1},
    ]
    monthly = stat(http, "monthly", start=B, end=D)
    assert sum(r["queued"] for r in monthly["rows"]) == 110
    assert monthly["rows"][-1]["month"] == D[:7]
    dom = by_key(stat(http, "days-of-month", start=B, end=D))
    assert len(dom) == 31 and dom[DAY.day]["queued"] == 5 and dom[BULK_DAY.day]["errors"] == 105
    dow = stat(http, "days-of-week", start=B, end=D)
    weekday = by_key(dow)[DAY.isoweekday()]
    assert weekday["label"] == ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[DAY.weekday()]
    assert weekday["failed"] == 1
    hours = by_key(stat(http, "hours", start=B, end=D))
    assert hours[10]["queued"] == 5 and hours[9]["queued"] == 105 and hours[0]["queued"] == 0
    assert by_key(stat(http, "hours", start=B, end=D, tz="Asia/Tokyo"))[19]["queued"] == 5


def test_unknown_statistic_is_404(http: httpx.Client) -> None:
    response = http.get("/api/v1/stats/nope", params={"start": D, "end": D})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- one delivery, and the live view -----------------------------------------------------------


def test_delivery_history(http: httpx.Client) -> None:
    history = http.get("/api/v1/deliveries/d-def").json()
    assert history["status"] == "deferred" and history["to"] == "greylist@c.test"
    assert [e["status"] for e in history["events"]] == ["queued", "deferred"]
    deferral = history["events"][1]
    assert deferral["replyCode"] == 451 and deferral["enhancedStatus"] == "4.7.1"
    assert deferral["mxHost"] == "mx.c.test" and deferral["nextAttemptAt"] is not None
    failed = http.get("/api/v1/deliveries/d-fail").json()
    assert failed["status"] == "failed" and failed["traceId"] == "trace-d-fail"
    assert [(e["status"], e["source"]) for e in failed["errors"]] == [(2, "smtp_reply")]
    for unknown in ("d-nope", "d-other"):  # another server's delivery is not found either
        response = http.get(f"/api/v1/deliveries/{unknown}")
        assert response.status_code == 404


def test_live_shows_todays_newest_deliveries(
    served: Served, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Today" is the queries' clock's day: held at noon, so the rows a few seconds apart and
    # the question fall on one day even when the test runs across midnight (UTC).
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    monkeypatch.setattr(served.queries, "clock", lambda: now.timestamp() + 1)
    events = [
        delivery_event(f"e-live-{i}", f"d-live-{i}", Q, now, now - timedelta(seconds=i), "l@e.test")
        for i in range(3)
    ]
    events.append(delivery_event("e-live-0b", "d-live-0", OK, now, now, "l@e.test", reply_code=250))
    served.call(served.ingest.write(as_messages(events)))
    live = http.get("/api/v1/deliveries/live").json()
    ids = [r["deliveryId"] for r in live["results"]]
    assert ids[:3] == ["d-live-0", "d-live-1", "d-live-2"]
    assert live["results"][0]["status"] == "succeeded" and live["results"][0]["replyCode"] == 250
    assert all(not i.startswith("d-b") for i in ids)  # not today's


# --- gRPC --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub(served: Served) -> Iterator[reports_pb2_grpc.ReportsStub]:
    with grpc.insecure_channel(served.grpc_listen) as channel:
        yield reports_pb2_grpc.ReportsStub(channel)


AUTH = (("authorization", "Bearer dev:dev-secret"),)


def test_grpc_search_export_stats_history(stub: reports_pb2_grpc.ReportsStub) -> None:
    found = stub.SearchErrors(reports_pb2.SearchRequest(start=D, end=D), metadata=AUTH)
    assert [r.to for r in found.results] == ["user-unknown@b.test"]
    assert found.results[0].status == "2" and getattr(found.results[0], "from") != ""
    deliveries = stub.SearchDeliveries(
        reports_pb2.SearchRequest(start=D, end=D, status="deferred"), metadata=AUTH
    )
    assert [r.to for r in deliveries.results] == ["greylist@c.test"]
    csv_bytes = b"".join(
        chunk.data
        for chunk in stub.ExportErrors(reports_pb2.SearchRequest(start=B, end=B), metadata=AUTH)
    )
    assert csv_bytes.count(b"\n") == 106
    stats = stub.GetStats(reports_pb2.StatsRequest(name="daily", start=D, end=D), metadata=AUTH)
    assert list(stats.columns) == ["queued", "deferred", "succeeded", "failed", "errors"]
    assert [(r.key, list(r.values)) for r in stats.rows] == [(D, [5, 1, 2, 1, 1])]
    history = stub.GetDeliveryHistory(reports_pb2.HistoryRequest(delivery_id="d-ok"), metadata=AUTH)
    assert [e.status for e in history.events] == ["queued", "succeeded"]
    assert getattr(history, "from") == "app@example.test"


def test_grpc_errors(stub: reports_pb2_grpc.ReportsStub) -> None:
    with pytest.raises(grpc.RpcError) as unauthenticated:
        stub.SearchErrors(reports_pb2.SearchRequest(start=D, end=D))
    assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as invalid:
        stub.SearchErrors(reports_pb2.SearchRequest(start=D), metadata=AUTH)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "end" in (invalid.value.details() or "")
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetDeliveryHistory(reports_pb2.HistoryRequest(delivery_id="d-nope"), metadata=AUTH)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    other = (("authorization", "Bearer other:other-secret"),)
    with pytest.raises(grpc.RpcError) as forbidden:
        list(stub.ExportErrors(reports_pb2.SearchRequest(start=D, end=D), metadata=other))
    assert forbidden.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --- bad input and broken exports (issue #12) --------------------------------------------------

BAD_INPUTS = [
    {"start": D, "end": "9999-12-31"},
    {"start": "0999-01-01", "end": D},
    {"start": "0001-01-01", "end": "0001-01-01"},
    {"start": D, "end": D, "tz": "A" * 300},
    {"start": D, "end": D, "tz": "../../../etc/passwd"},
    {"start": D, "end": D, "page": "9" * 400},
    {"start": D, "end": D, "page": "²"},
    {"start": D, "end": D, "address": "x" * 5000},
    {"start": "2026-02-30", "end": D},
    {"start": D, "end": D, "error": "١"},
    {"start": D, "end": D, "limit": "9" * 50, "interval": "hour"},
]


@pytest.mark.parametrize("params", BAD_INPUTS)
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/errors",
        "/api/v1/deliveries",
        "/api/v1/errors.csv",
        "/api/v1/deliveries.csv",
        "/api/v1/stats/daily",
        "/api/v1/stats/deliveries",
        "/api/v1/stats/domains",
    ],
)
def test_bad_input_is_a_400_in_the_documented_shape(
    http: httpx.Client, path: str, params: dict[str, str]
) -> None:
    response = http.get(path, params=params)
    if response.status_code == 200:
        # a parameter this endpoint does not take (page on a statistic or an export) is
        # ignored
        assert set(params) - {"start", "end", "tz"}, "a bad date or zone must be refused"
        return
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "invalid_parameter"
    assert body["error"]["field"] and len(body["error"]["message"]) < 300


def test_unknown_paths_and_methods_answer_the_error_shape(http: httpx.Client) -> None:
    missing = http.get("/api/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = http.post("/api/v1/errors", params={"start": D, "end": D})
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_openapi_lists_every_parameter_answer_and_error(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    errors = paths["/api/v1/errors"]["get"]
    names = {p["name"] for p in errors["parameters"]}
    assert {"start", "end", "error", "address", "page", "tz", "server", "api_user"} <= names
    start = next(p for p in errors["parameters"] if p["name"] == "start")
    assert start["required"] is True and start["schema"]["format"] == "date"
    assert {"200", "400", "401", "403", "429", "503"} <= set(errors["responses"])
    ok = errors["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/SearchAnswer")
    stats = {p["name"] for p in paths["/api/v1/stats/{name}"]["get"]["parameters"]}
    assert {"name", "start", "end", "interval", "domain", "limit"} <= stats
    assert "/api/v1/suppressions" in paths and "delete" in paths["/api/v1/suppressions/{address}"]
    assert "text/csv" in paths["/api/v1/errors.csv"]["get"]["responses"]["200"]["content"]


def test_rows_carry_the_message_id_header_and_postline_id(http: httpx.Client) -> None:
    [row] = get(http, "/api/v1/errors")["results"]
    assert row["messageId"] == "<d-fail@mail.example.test>" and row["id"] == "m-d-fail"
    assert row["returnPath"] == "bounce-d-fail@bounce.example.test"
    detail = get(http, f"/api/v1/errors/{row['eventId']}")
    assert detail["to"] == "user-unknown@b.test" and detail["source"] == "smtp_reply"
    assert detail["messageId"] == row["messageId"] and detail["deliveryId"] == "d-fail"
    assert http.get("/api/v1/errors/x-nope").json()["error"]["code"] == "not_found"
    # another server's error is not found for dev
    assert http.get("/api/v1/errors/x-other").status_code == 404


def test_settings_show_the_policy_without_secrets(http: httpx.Client) -> None:
    response = http.get("/api/v1/settings")
    assert response.status_code == 200
    answer = response.json()
    assert [s["name"] for s in answer["servers"]] == ["default"]  # dev sees its own server
    assert [u["name"] for u in answer["servers"][0]["api_users"]] == ["dev", "app"]
    assert "argon2" not in response.text and "secret" not in response.text


class FailingLater:
    """The real store, whose reads fail from the ``n``-th on (ClickHouse lost mid-export)."""

    def __init__(self, store: Store, n: int) -> None:
        self.store, self.n, self.calls = store, n, 0

    async def rows(self, sql: str, params: dict[str, Any]) -> Any:
        self.calls += 1
        if self.calls >= self.n:
            raise ConnectionError("ClickHouse went away")
        return await self.store.rows(sql, params)


def test_an_export_broken_mid_stream_is_a_truncated_transfer(
    served: Served, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 7)
    store = served.queries.store
    monkeypatch.setattr(served.queries, "store", FailingLater(store, 3))
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):  # no terminating chunk: visibly broken
        with http.stream("GET", "/api/v1/errors.csv", params={"start": B, "end": B}) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received.extend(chunk)
    assert received.startswith(b"created,status") and received.count(b"\n") == 1 + 14

    # failing before the first row: an error answer, not an empty file
    monkeypatch.setattr(served.queries, "store", FailingLater(store, 1))
    response = http.get("/api/v1/errors.csv", params={"start": B, "end": B})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
