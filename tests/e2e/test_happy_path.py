"""One message end to end through all five services, as separate processes.

SMTP -> ingress -> scheduler -> sender -> destination simulator; results back through the
scheduler and bounce to reports (ClickHouse), read back through the reports API.
"""

from __future__ import annotations

import smtplib

import pytest

from postline.common.verp import decode_verp
from postline.devstack import Stack
from postline.simulator.client import SimulatorClient
from tests.e2e.conftest import ReportsClient
from tests.polling import poll_until

pytestmark = pytest.mark.e2e


def _send(stack: Stack, rcpt: str, subject: str) -> str:
    host, port = stack.ports.smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.login("dev", "dev-secret")
        message = f"From: app@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nHello.\r\n"
        code, reply = smtp.mail("app@example.test")
        assert code == 250
        code, reply = smtp.rcpt(rcpt)
        assert code == 250
        code, reply = smtp.data(message.encode())
        assert code == 250, reply
        assert reply.startswith(b"2.0.0 Ok: queued as ")
        return reply.decode().rsplit(" ", 1)[1]


def _row(reports: ReportsClient, path: str, rcpt: str, status: object) -> dict[str, object] | None:
    rows = reports.get(path, address=rcpt)["results"]
    return next((r for r in rows if r["to"] == rcpt and r["status"] == status), None)


def test_one_success_and_one_unknown_user(
    stack: Stack, simulator: SimulatorClient, reports: ReportsClient
) -> None:
    ok_id = _send(stack, "someone@a.test", "hello")
    bad_id = _send(stack, "user-unknown@b.test", "nobody home")

    arrived = poll_until(
        lambda: simulator.messages(rcpt="someone@a.test"), "the mail at the simulator"
    )
    # The envelope sender is the VERP return path of the delivery (the bounce server's domain).
    assert decode_verp(arrived[0]["mail_from"])
    assert arrived[0]["mail_from"].endswith("@bounce.example.test")

    succeeded = poll_until(
        lambda: _row(reports, "/api/v1/deliveries", "someone@a.test", "succeeded"),
        "someone@a.test succeeded in the delivery log",
    )
    # id is Postline's message id; messageId the Message-ID header ingress added
    assert succeeded["id"] == ok_id and succeeded["messageId"].startswith("<")
    assert succeeded["subject"] == "hello"

    failed = poll_until(
        lambda: _row(reports, "/api/v1/deliveries", "user-unknown@b.test", "failed"),
        "user-unknown@b.test failed in the delivery log",
    )
    assert failed["id"] == bad_id

    error = poll_until(
        lambda: _row(reports, "/api/v1/errors", "user-unknown@b.test", 2),
        "user-unknown@b.test with status 2 in the error log",
    )
    assert "5.1.1" in str(error["reason"])
    assert error["traceId"] == failed["traceId"]

    assert simulator.messages(rcpt="user-unknown@b.test") == []
    errors_only_2 = reports.get("/api/v1/errors", error="2")
    assert [r["to"] for r in errors_only_2["results"]] == ["user-unknown@b.test"]
    assert reports.get("/api/v1/errors", error="5")["results"] == []
