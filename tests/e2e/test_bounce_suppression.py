"""Delivery blocking end to end: an unknown user is suppressed by bounce, and the next mail to
that address (in any letter case) fails at once with status 10, never reaching the
destination."""

from __future__ import annotations

import smtplib

import grpc
import pytest

from postline.devstack import Stack
from postline.simulator.client import SimulatorClient
from postline.v1 import suppression_pb2, suppression_pb2_grpc
from tests.e2e.conftest import ReportsClient
from tests.polling import poll_until

pytestmark = pytest.mark.e2e


def _send(stack: Stack, rcpt: str, subject: str) -> None:
    host, port = stack.ports.smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.login("dev", "dev-secret")
        message = f"From: app@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nHi.\r\n"
        smtp.sendmail("app@example.test", [rcpt], message.encode())


def _errors(reports: ReportsClient, rcpt: str, status: int) -> list[dict[str, object]]:
    rows = reports.get("/api/v1/errors", address=rcpt)["results"]
    return [r for r in rows if str(r["to"]).lower() == rcpt.lower() and r["status"] == status]


def _check(stack: Stack, address: str) -> bool:
    with grpc.insecure_channel(stack.ports.bounce_grpc) as channel:
        stub = suppression_pb2_grpc.SuppressionsStub(channel)
        key = suppression_pb2.SuppressionKey(server="default", address=address)
        return bool(stub.Check(key, timeout=10).suppressed)


def test_an_unknown_user_is_blocked_from_then_on(
    stack: Stack, simulator: SimulatorClient, reports: ReportsClient
) -> None:
    rcpt = "user-unknown@blocked.test"
    _send(stack, rcpt, "first try")
    poll_until(lambda: _errors(reports, rcpt, 2), "the unknown user in the error log", 60)
    poll_until(lambda: _check(stack, "User-Unknown@Blocked.test"), "the suppression", 60)
    assert simulator.messages(rcpt=rcpt) == []  # refused at RCPT: nothing arrived

    _send(stack, "User-Unknown@blocked.test", "second try")
    blocked = poll_until(
        lambda: _errors(reports, "User-Unknown@blocked.test", 10),
        "the second mail failed with status 10 (blocked address)",
        60,
    )
    assert "suppress" in str(blocked[0]["reason"]).lower()
    failed = poll_until(
        lambda: [
            r
            for r in reports.get("/api/v1/deliveries", address=rcpt, status="failed")["results"]
            if r["subject"] == "second try"
        ],
        "the second delivery failed in the delivery log",
        60,
    )
    assert failed
    # Never attempted: the simulator refused this address once, for the first mail only.
    assert simulator.stats()["domains"]["blocked.test"]["rejected"] == 1
    assert simulator.messages(rcpt=rcpt) == []
