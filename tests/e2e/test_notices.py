"""Delivery status notifications end to end: every service as a process, mail over SMTP with
RFC 3461 parameters, the notices arriving at the destination simulator for the envelope
sender, parsed as RFC 3464, and classified by ``postline bounce classify``.

One stack for the module: retries every 2 s, a delay warning after 3 s, and a retry profile
that gives ``tempfail@`` a 12 s resend period (so it is deferred, warned once, then fails).
"""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest

from postline.simulator.client import SimulatorClient
from tests.e2e.scheduler_support import Running, scheduler_stack
from tests.polling import poll_until

pytestmark = pytest.mark.e2e

SERVER: dict[str, Any] = {
    "retry": {
        "interval": "2s",
        "resend_period": "1h",
        "profiles": [
            {"header": "To", "pattern": "^tempfail@", "interval": "2s", "resend_period": "12s"}
        ],
    },
    "notices": {
        "from": "mailer-daemon@bounce.example.test",
        "delay_warning_after": "3s",
        "failure": True,
        "success": False,
    },
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with scheduler_stack(tmp_path_factory.mktemp("notices"), SERVER) as running:
        yield running


def send(
    run: Running,
    sender: str,
    recipients: dict[str, list[str]],
    mail_options: list[str] | None = None,
) -> None:
    """One message from ``sender`` to each recipient with its RCPT parameters."""
    host, port = run.stack.ports.smtp.rsplit(":", 1)
    first = next(iter(recipients))
    message = (
        f"From: {sender}\r\nTo: {first}\r\nSubject: Order 42\r\n"
        "Message-ID: <order-42@shop.test>\r\n\r\nThe body line.\r\n"
    ).encode()
    with smtplib.SMTP(host, int(port), timeout=60) as smtp:
        smtp.login("dev", "dev-secret")
        smtp.ehlo()
        assert smtp.has_extn("dsn")
        assert smtp.mail(sender, mail_options or [])[0] == 250
        for rcpt, options in recipients.items():
            assert smtp.rcpt(rcpt, options)[0] == 250
        assert smtp.data(message)[0] == 250


def notices_for(simulator: SimulatorClient, sender: str) -> list[dict[str, Any]]:
    return simulator.messages(rcpt=sender, raw=True)


def at_least(simulator: SimulatorClient, sender: str, count: int) -> list[dict[str, Any]]:
    found = notices_for(simulator, sender)
    return found if len(found) >= count else []


def parsed(notice: dict[str, Any]) -> Message:
    return email.message_from_bytes(notice["raw"], policy=email.policy.compat32)


def report(message: Message) -> tuple[Message, Message, Message]:
    """(per-message fields, recipient fields, returned part) of an RFC 3464 report."""
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    human, status, returned = message.get_payload()
    assert human.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_recipient = status.get_payload()
    return per_message, per_recipient, returned


def classify(notice: dict[str, Any]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "postline.common.cli", "bounce", "classify", "-"],
        input=notice["raw"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def test_a_5xx_produces_a_failure_notice_for_the_envelope_sender(run: Running) -> None:
    sender = "failing-app@senders.test"
    send(
        run,
        sender,
        {"user-unknown@gone.test": ["ORCPT=rfc822;Old+2Bname@gone.test"]},
        ["RET=FULL", "ENVID=order+2B42"],
    )
    [notice] = poll_until(lambda: notices_for(run.simulator, sender), "the failure notice", 90)
    assert notice["mail_from"] == "<>"  # the null reverse-path: no notice answers it
    message = parsed(notice)
    assert message["From"] == "Mail Delivery System <mailer-daemon@bounce.example.test>"
    assert message["Auto-Submitted"] == "auto-replied"
    per_message, per_recipient, returned = report(message)
    assert per_message["Reporting-MTA"] == "dns; bounce.example.test"
    assert per_message["Original-Envelope-Id"] == "order+42"
    assert per_message["Arrival-Date"]
    assert per_recipient["Final-Recipient"] == "rfc822; user-unknown@gone.test"
    assert per_recipient["Original-Recipient"] == "rfc822;Old+name@gone.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    assert per_recipient["Last-Attempt-Date"]
    assert returned.get_content_type() == "message/rfc822"  # RET=FULL
    [original] = returned.get_payload()
    assert original["Message-ID"] == "<order-42@shop.test>"
    assert "The body line." in str(original.get_payload())

    [verdict] = classify(notice)
    assert verdict["recipient"] == "user-unknown@gone.test"
    assert (verdict["status"], verdict["delivery"]) == (2, "failed")  # unknown user

    # Delivered by Postline's own path: the notice is in the delivery log as a delivery.
    rows = poll_until(
        lambda: run.reports.get("/api/v1/deliveries", address=sender, status="succeeded")[
            "results"
        ],
        "the notice's delivery in the log",
        60,
    )
    assert rows[0]["to"] == sender


def test_a_deferred_delivery_gets_one_delay_warning_then_a_failure_notice(
    run: Running,
) -> None:
    sender = "waiting-app@senders.test"
    send(run, sender, {"tempfail@slow.test": []})
    first = poll_until(lambda: notices_for(run.simulator, sender), "the delay warning", 90)
    _, per_recipient, returned = report(parsed(first[0]))
    assert per_recipient["Action"] == "delayed"
    assert per_recipient["Status"] == "4.4.2"
    assert per_recipient["Final-Recipient"] == "rfc822; tempfail@slow.test"
    assert per_recipient["Will-Retry-Until"]
    assert per_recipient["Diagnostic-Code"].startswith("smtp; 421 4.4.2")
    assert returned.get_content_type() == "text/rfc822-headers"  # no RET: headers only
    [verdict] = classify(first[0])
    assert (verdict["recipient"], verdict["delivery"]) == ("tempfail@slow.test", "deferred")

    # Retried every 2 s until the 12 s resend period ends: still one warning, then failure.
    both = poll_until(
        lambda: at_least(run.simulator, sender, 2),
        "the failure notice after the resend period",
        90,
    )
    actions = [report(parsed(n))[1]["Action"] for n in both]
    assert actions == ["delayed", "failed"]
    [verdict] = classify(both[1])
    assert (verdict["recipient"], verdict["status"]) == ("tempfail@slow.test", 3)


def test_notify_success_produces_a_success_notice_and_never_silences(run: Running) -> None:
    sender = "receipts-app@senders.test"
    send(
        run,
        sender,
        {
            "reader@fine.test": ["NOTIFY=SUCCESS"],
            "other@fine.test": [],  # notices.success is off: no receipt
            "user-unknown+quiet@fine.test": ["NOTIFY=NEVER"],
            "user-unknown+told@fine.test": ["NOTIFY=FAILURE,DELAY"],
        },
    )
    poll_until(lambda: at_least(run.simulator, sender, 2), "the success and failure notices", 90)
    # Every delivery of the message is final once its log says so; then count the notices.
    for rcpt, status in [
        ("reader@fine.test", "succeeded"),
        ("other@fine.test", "succeeded"),
        ("user-unknown+quiet@fine.test", "failed"),
        ("user-unknown+told@fine.test", "failed"),
    ]:
        poll_until(
            lambda rcpt=rcpt, status=status: run.reports.get(  # type: ignore[misc]
                "/api/v1/deliveries", address=rcpt, status=status
            )["results"],
            f"{rcpt} {status}",
            60,
        )
    found = notices_for(run.simulator, sender)
    by_recipient = {report(parsed(n))[1]["Final-Recipient"]: n for n in found}
    assert sorted(by_recipient) == [
        "rfc822; reader@fine.test",
        "rfc822; user-unknown+told@fine.test",
    ], by_recipient.keys()
    _, success, _ = report(parsed(by_recipient["rfc822; reader@fine.test"]))
    assert (success["Action"], success["Status"]) == ("delivered", "2.0.0")
    assert success["Diagnostic-Code"].startswith("smtp; 250")
    assert classify(by_recipient["rfc822; reader@fine.test"]) == []  # a receipt, no failure
