"""The sender inside the whole system: a message submitted over SMTP arrives with its VERP
return path (decoding to the delivery id the reports show) and without the application's
Received headers (the dev policy strips them)."""

from __future__ import annotations

import smtplib

import pytest

from postline.common.verp import decode_verp
from postline.devstack import Stack
from postline.simulator.client import SimulatorClient
from tests.e2e.conftest import ReportsClient
from tests.polling import poll_until

pytestmark = pytest.mark.e2e


def test_return_path_and_headers_at_the_destination(
    stack: Stack, simulator: SimulatorClient, reports: ReportsClient
) -> None:
    rcpt = "verp-check@c.test"
    host, port = stack.ports.smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.login("dev", "dev-secret")
        smtp.sendmail(
            "app@example.test",
            [rcpt],
            (
                "Received: from laptop.example.test ([192.0.2.9]) by app.example.test; "
                "Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                f"From: app@example.test\r\nTo: {rcpt}\r\nSubject: verp\r\n\r\nHello.\r\n"
            ),
        )

    [message] = poll_until(lambda: simulator.messages(rcpt=rcpt, raw=True), "the mail")
    assert b"192.0.2.9" not in message["raw"]  # the application's Received header is gone
    assert message["mail_from"].endswith("@bounce.example.test")

    row = poll_until(
        lambda: next(
            (r for r in reports.get("/api/v1/deliveries", address=rcpt)["results"]
             if r["status"] == "succeeded"),
            None,
        ),
        f"{rcpt} succeeded in the delivery log",
        timeout=60,
    )  # fmt: skip
    assert decode_verp(message["mail_from"]) == row["deliveryId"]
