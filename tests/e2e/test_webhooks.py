"""Telling the sender, end to end: every service as a process, mail over SMTP, a webhook
receiver verifying each request with the Standard Webhooks library.

One stack: its event webhook is down when the first events come (it answers 503) and gets
everything once it answers; every event type arrives (queued, deferred, succeeded, failed,
bounced, complained, suppressed); a mail sent to an inbound domain reaches the inbound
webhook; the weekly summary, due a minute before the stack starts, is delivered through
Postline to the simulator.
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from postline.common.verp import decode_verp
from postline.devstack import Ports, Stack
from postline.simulator.client import SimulatorClient
from tests.conftest import DEV_POLICY
from tests.e2e.conftest import stack_in, started
from tests.polling import poll_until
from tests.webhook_support import WebhookReceiver

pytestmark = pytest.mark.e2e

PORT_OFFSET = int(os.environ.get("POSTLINE_TEST_PORT_OFFSET", "11000"))
EVERY_TYPE = {"queued", "deferred", "succeeded", "failed", "bounced", "complained", "suppressed"}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(answer=503).start()
    yield receiver
    receiver.stop()


def write_policy(path: Path, ports: Ports, receiver: WebhookReceiver, due: datetime) -> Path:
    data: dict[str, Any] = yaml.safe_load(DEV_POLICY.read_text())
    default = data["servers"]["default"]
    default["routes"] = [{"match": ["*.test"], "to": ports.simulator, "tls": "opportunistic"}]
    secret = {"env": "POSTLINE_TEST_WEBHOOK_SECRET"}
    default["webhooks"] = [{"url": receiver.url("/events"), "secret": secret}]
    default["weekly_summary"] = {
        "to": ["ops@summary.test"],
        "day": ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[due.weekday()],
        "time": due.strftime("%H:%M"),
        "timezone": "UTC",
    }
    data["inbound"] = [
        {"domain": "in.example.test", "url": receiver.url("/inbound"), "secret": secret}
    ]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def stack(amqp_url: str, tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Stack]:
    ports = Ports(offset=PORT_OFFSET)
    due = datetime.now(UTC) - timedelta(minutes=1)
    stack = stack_in(
        tmp_path,
        write_policy(tmp_path / "postline.yaml", ports, receiver, due),
        amqp_url,
        ports,
        extra_env={
            "POSTLINE_TEST_WEBHOOK_SECRET": receiver.secret,
            "POSTLINE_WEBHOOK_BATCH_WAIT": "0.2",
            "POSTLINE_WEBHOOK_RETRY_FIRST": "0.5",
            "POSTLINE_WEBHOOK_RETRY_MAX": "2",
        },
    )
    with started(stack) as up:
        yield up


def _relay(stack: Stack, rcpt: str, subject: str) -> None:
    host, port = stack.ports.smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.login("dev", "dev-secret")
        message = (
            f"From: app@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
            f"X-Api-Data: {subject}\r\n\r\nHello.\r\n"
        )
        smtp.sendmail("app@example.test", [rcpt], message.encode())


def _receive(stack: Stack, sender: str, rcpt: str, message: bytes) -> None:
    host, port = stack.ports.bounce_smtp.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.sendmail(sender, [rcpt], message)


def _dsn(return_path: str, rcpt: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.ok.test\r\nTo: {return_path}\r\nSubject: Undelivered\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full.\r\n\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.ok.test\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        "Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n\r\n--b--\r\n"
    ).encode()


def _arf(return_path: str, rcpt: str) -> bytes:
    return (
        f"From: fbl@isp.test\r\nTo: {return_path}\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\r\n\r\n'
        "--f\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        "--f\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: isp/1\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {rcpt}\r\n\r\n"
        "--f\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Subject: ok\r\nTo: {rcpt}\r\n\r\nHi\r\n--f--\r\n"
    ).encode()


def test_every_event_inbound_mail_and_the_weekly_summary(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    simulator = SimulatorClient(f"http://{stack.ports.simulator_control}")
    _relay(stack, "someone@ok.test", "ok")
    _relay(stack, "user-unknown@gone.test", "gone")
    _relay(stack, "greylist@later.test", "later")
    poll_until(lambda: receiver.refused >= 2, "the webhook refused while down", 60)
    receiver.answer = 200

    [arrived] = poll_until(lambda: simulator.messages(rcpt="someone@ok.test"), "delivery", 60)
    return_path = arrived["mail_from"]
    delivery_id = decode_verp(return_path)
    _receive(stack, "", return_path, _dsn(return_path, "someone@ok.test"))
    _receive(stack, "fbl@isp.test", return_path, _arf(return_path, "someone@ok.test"))

    def every_type_and_its_success() -> bool:
        # The weekly summary's own success can complete the set of types while this
        # delivery's, refused while the webhook was down, waits out its retry delay.
        events = receiver.events("/events")
        return {e["type"] for e in events} >= EVERY_TYPE and any(
            e["type"] == "succeeded" and e["delivery_id"] == delivery_id for e in events
        )

    poll_until(every_type_and_its_success, "every event type at the webhook", 90)
    assert receiver.bad_signatures == 0
    events = receiver.events("/events")
    bounced = next(e for e in events if e["type"] == "bounced")
    assert (bounced["delivery_id"], bounced["api_data"], bounced["error_status"]) == (
        delivery_id,
        "ok",
        5,
    )
    complained = next(e for e in events if e["type"] == "complained")
    assert (complained["delivery_id"], complained["subject"]) == (delivery_id, "ok")
    failed = next(e for e in events if e["type"] == "failed")
    assert failed["recipient"] == "user-unknown@gone.test" and failed["reply"]["code"] == 550
    suppressed = next(e for e in events if e["type"] == "suppressed")
    assert suppressed["recipient"] == "user-unknown@gone.test"
    deferred = next(e for e in events if e["type"] == "deferred")
    assert deferred["recipient"] == "greylist@later.test" and deferred["next_attempt_at"]
    succeeded = [e for e in events if e["type"] == "succeeded"]
    assert any(e["delivery_id"] == delivery_id and e["subject"] == "ok" for e in succeeded)

    # Inbound mail: the receiving server takes it and the inbound webhook gets it.
    letter = b"From: c@outside.test\r\nTo: support@in.example.test\r\nSubject: Help\r\n\r\nHi!\r\n"
    _receive(stack, "c@outside.test", "support@in.example.test", letter)
    [inbound] = poll_until(
        lambda: [r for r in receiver.accepted if r.path == "/inbound"], "the inbound mail", 60
    )
    assert inbound.payload["data"]["subject"] == "Help"
    assert inbound.payload["data"]["text"] == "Hi!\n"

    # The weekly summary went through Postline: the simulator has it, one summary (a loaded
    # machine may see it delivered twice, the at-least-once norm: the same Message-ID).
    summaries = poll_until(
        lambda: simulator.messages(rcpt="ops@summary.test", raw=True), "the weekly summary", 90
    )
    assert len({_message_id(s["raw"]) for s in summaries}) == 1, summaries
    assert b"Subject: Postline weekly summary: default," in summaries[0]["raw"]
    assert b"X-Postline-Summary: weekly" in summaries[0]["raw"]


def _message_id(raw: bytes) -> bytes:
    return next(
        line.split(b":", 1)[1].strip()
        for line in raw.split(b"\r\n")
        if line.lower().startswith(b"message-id:")
    )
