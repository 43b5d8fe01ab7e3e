"""The reports service in the whole system: two mails through every service, then every view
of them — statistics, CSV, one delivery's history, the live view — over HTTP and gRPC."""

from __future__ import annotations

import csv
import io
import smtplib
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from postline.devstack import Stack
from postline.simulator.client import SimulatorClient
from postline.v1 import reports_pb2, reports_pb2_grpc
from tests.e2e.conftest import ReportsClient, up_to_today
from tests.polling import poll_until

pytestmark = pytest.mark.e2e

OK, BAD = "reader@views.test", "user-unknown@views-bad.test"


def _send(stack: Stack, rcpt: str, subject: str) -> None:
    host, port = stack.ports.smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.login("dev", "dev-secret")
        message_id = f"<{subject.split(',')[0].replace(' ', '-')}@app.example.test>"
        message = (
            f"From: app@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\n\r\nHi.\r\n"
        )
        smtp.sendmail("app@example.test", [rcpt], message.encode())


def _daily(reports: ReportsClient) -> dict[str, Any]:
    """Yesterday's and today's figures added up (a run across midnight has rows on both)."""
    rows: list[dict[str, Any]] = reports.get("/api/v1/stats/daily")["rows"]
    return {k: sum(r[k] for r in rows) for k in ("succeeded", "failed", "errors")}


def test_statistics_csv_history_and_live(
    stack: Stack, simulator: SimulatorClient, reports: ReportsClient
) -> None:
    # The live view shows the deliveries of today in a time zone: one where midnight is hours
    # away, so both mails, sent now and asked for a few minutes later, fall on one of its days.
    live_tz = "UTC" if 1 <= datetime.now(UTC).hour <= 22 else "Asia/Tokyo"
    _send(stack, OK, "Invoice, November")
    _send(stack, BAD, "nobody home")

    poll_until(
        lambda: (d := _daily(reports))["succeeded"] >= 1 and d["failed"] >= 1 and d["errors"] >= 1,
        "today's statistics to count a success, a failure and an error",
        timeout=60,
    )
    domains = {r["domain"]: r for r in reports.get("/api/v1/stats/domains")["rows"]}
    assert domains["views.test"]["succeeded"] == 1
    assert domains["views-bad.test"]["failed"] == 1
    replies = {r["reply"] for r in reports.get("/api/v1/stats/reply-codes")["rows"]}
    assert any(reply.startswith("550") for reply in replies)
    errors = {r["status"]: r["errors"] for r in reports.get("/api/v1/stats/errors")["rows"]}
    assert errors[2] == 1

    # errors.csv: the design's header and the classified row
    days = up_to_today()
    request = urllib.request.Request(
        f"http://{stack.ports.reports}/api/v1/errors.csv?{urllib.parse.urlencode(days)}",
        headers={"Authorization": reports.auth},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    assert body.startswith(b"created,status,from,to,messageId,returnPath,subject,apiData,reason\n")
    [row] = [r for r in rows if r["to"] == BAD]
    assert row["status"] == "2" and row["from"] == "app@example.test" and "5.1.1" in row["reason"]
    # messageId is the mail's Message-ID header; returnPath the VERP sender used on the wire
    assert row["messageId"] == "<nobody-home@app.example.test>"
    assert row["returnPath"].startswith("bounce-") and row["returnPath"].endswith(
        "@bounce.example.test"
    )
    [delivered] = reports.get("/api/v1/deliveries", address=OK)["results"]
    assert delivered["messageId"] == "<Invoice@app.example.test>" and delivered["id"]
    assert delivered["returnPath"] == f"bounce-{delivered['deliveryId']}@bounce.example.test"

    # one delivery's history: every event, the classified error, one trace
    [failed] = reports.get("/api/v1/deliveries", address=BAD)["results"]
    history = reports.get(f"/api/v1/deliveries/{failed['deliveryId']}")
    assert history["status"] == "failed"
    statuses = [e["status"] for e in history["events"]]
    assert statuses[0] == "queued" and statuses[-1] == "failed"
    assert history["events"][-1]["replyCode"] == 550
    assert [e["status"] for e in history["errors"]] == [2]
    assert history["traceId"] and history["errors"][0]["traceId"] == history["traceId"]

    live = reports.get("/api/v1/deliveries/live", tz=live_tz)["results"]
    assert {OK, BAD} <= {r["to"] for r in live}

    # the same through gRPC
    with grpc.insecure_channel(stack.ports.reports_grpc) as channel:
        stub = reports_pb2_grpc.ReportsStub(channel)
        auth = (("authorization", reports.auth),)
        found = stub.SearchErrors(reports_pb2.SearchRequest(**days, address=BAD), metadata=auth)
        assert [r.to for r in found.results] == [BAD] and found.results[0].status == "2"
        daily = stub.GetStats(reports_pb2.StatsRequest(name="daily", **days), metadata=auth)
        failed = list(daily.columns).index("failed")
        assert sum(row.values[failed] for row in daily.rows) >= 1
