"""A bounce mail for a delivery that had succeeded: the destination accepted the mail, then a
DSN came back to its VERP return path. It lands in the error log with every field, and the
delivery keeps its own history (still succeeded)."""

from __future__ import annotations

import smtplib

import pytest

from postline.common.verp import decode_verp
from postline.devstack import Stack
from postline.simulator.client import SimulatorClient
from tests.e2e.bounce_support import RCPT, dsn
from tests.e2e.conftest import ReportsClient
from tests.polling import poll_until

pytestmark = pytest.mark.e2e


def test_a_bounce_after_success_lands_in_the_error_log(
    stack: Stack, simulator: SimulatorClient, reports: ReportsClient
) -> None:
    host, port = stack.ports.smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.login("dev", "dev-secret")
        message = (
            f"From: app@example.test\r\nTo: {RCPT}\r\nSubject: Monthly letter\r\n"
            "X-Api-Data: letter-2026-11\r\n\r\nHello.\r\n"
        )
        smtp.sendmail("app@example.test", [RCPT], message.encode())

    [arrived] = poll_until(lambda: simulator.messages(rcpt=RCPT), "the mail at the simulator")
    return_path = arrived["mail_from"]
    delivery_id = decode_verp(return_path)
    assert delivery_id
    poll_until(
        lambda: reports.get("/api/v1/deliveries", address=RCPT, status="succeeded")["results"],
        "the delivery succeeded",
    )

    host, port = stack.ports.bounce_smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.sendmail("", [return_path], dsn(return_path))

    [error] = poll_until(
        lambda: [r for r in reports.get("/api/v1/errors", address=RCPT)["results"]],
        "the bounce in the error log",
        60,
    )
    assert error["status"] == 5
    assert error["from"] == "app@example.test"
    assert error["to"] == RCPT
    assert error["returnPath"] == return_path
    assert error["subject"] == "Monthly letter"
    assert error["apiData"] == "letter-2026-11"
    assert "quota exceeded" in str(error["reason"])
    assert error["created"] and error["messageId"]

    [delivery] = reports.get("/api/v1/deliveries", address=RCPT)["results"]
    assert delivery["status"] == "succeeded"
    assert delivery["deliveryId"] == delivery_id
