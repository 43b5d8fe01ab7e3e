"""Delivery status notifications: who gets which (``notices.wanted``), when the delay warning
is due, and the notice itself, parsed back with the stdlib email parser as RFC 3464 and
classified by Postline's own bounce classifier."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import yaml

from postline.bounce.verdicts import classify_mail
from postline.common.dsn import dsn_request
from postline.common.policy import Server, load_policy, parse_policy
from postline.common.timeutil import to_timestamp
from postline.scheduler import notices
from postline.scheduler.notice_mail import Action, compose
from postline.v1 import delivery_pb2
from tests.events_support import RecordingBroker

DEV_POLICY = Path(__file__).resolve().parents[2] / "postline.dev.yaml"
ACCEPTED = 1_800_000_000.0
ORIGINAL = (
    b"Message-ID: <m1@app.example.test>\r\nFrom: app@example.test\r\nTo: a@x.test\r\n"
    b"Subject: Your order\r\n\r\nThe body line.\r\n"
)


def _server(**notices_: Any) -> Server:
    data = yaml.safe_load(DEV_POLICY.read_text())
    default = data["servers"]["default"]
    default["notices"] = {**default["notices"], **notices_}
    default["api_users"][0]["language"] = "ja"
    default["api_users"].append({**default["api_users"][0], "name": "en-user"})
    del default["api_users"][1]["language"]
    return parse_policy(yaml.safe_dump(data)).server("default")


@pytest.fixture(scope="module")
def server() -> Server:
    return load_policy(DEV_POLICY).server("default")


def _task(
    dsn: delivery_pb2.DsnRequest | None = None, sender: str = "app@example.test", **fields: Any
) -> delivery_pb2.DeliveryTask:
    delivery = delivery_pb2.AcceptedDelivery(
        delivery_id="0123abcd",
        message_id="m0",
        server="default",
        api_user="dev",
        envelope_from=sender,
        recipient="a@x.test",
        recipient_domain="x.test",
        content=ORIGINAL,
        header_message_id="<m1@app.example.test>",
        dsn=dsn,
        **fields,
    )
    delivery.accepted_at.CopyFrom(to_timestamp(ACCEPTED))
    task = delivery_pb2.DeliveryTask(delivery=delivery, attempt=3)
    task.expires_at.CopyFrom(to_timestamp(ACCEPTED + 4 * 3600))
    return task


def _result(
    task: delivery_pb2.DeliveryTask, code: int, status: str, text: str
) -> delivery_pb2.DeliveryResult:
    outcome = {2: 1, 4: 2, 5: 3}[code // 100]
    result = delivery_pb2.DeliveryResult(
        task=task,
        outcome=outcome,  # type: ignore[arg-type]
        reply_code=code,
        enhanced_status=status,
        reply_text=text,
        mx_host="mx.x.test",
    )
    result.finished_at.CopyFrom(to_timestamp(ACCEPTED + 600))
    return result


# -- who gets which ---------------------------------------------------------------------------


NOTIFY = {
    "never": (True, False, False, False),
    "success": (False, True, False, False),
    "failure": (False, False, True, False),
    "delay": (False, False, False, True),
}


@pytest.mark.parametrize(
    ("notify", "delivered", "failed", "delayed"),
    [
        (None, False, True, True),  # the policy decides: failure on, success off
        ("never", False, False, False),
        ("success", True, False, False),
        ("failure", False, True, False),
        ("delay", False, False, True),
    ],
)
def test_notify_decides_when_given_else_the_policy(
    server: Server, notify: str | None, delivered: bool, failed: bool, delayed: bool
) -> None:
    request = dsn_request(notify=NOTIFY[notify]) if notify else None
    delivery = _task(request).delivery
    assert notices.wanted(server, delivery, Action.DELIVERED) is delivered
    assert notices.wanted(server, delivery, Action.FAILED) is failed
    assert notices.wanted(server, delivery, Action.DELAYED) is delayed


def test_policy_switches(server: Server) -> None:
    delivery = _task().delivery
    assert notices.wanted(_server(success=True), delivery, Action.DELIVERED)
    assert not notices.wanted(_server(failure=False), delivery, Action.FAILED)
    # An explicit NOTIFY=FAILURE is a request the MTA honours (RFC 3461 §4.1).
    asked = _task(dsn_request(notify=NOTIFY["failure"])).delivery
    assert notices.wanted(_server(failure=False), asked, Action.FAILED)


def test_never_for_a_null_sender_a_notice_a_forwarding_copy_or_postlines_own_mail(
    server: Server,
) -> None:
    for delivery in (
        _task(sender="").delivery,
        _task(is_notice=True).delivery,
        _task(forwarded_from="d0").delivery,
        _task(sender="MAILER-DAEMON@bounce.example.test").delivery,  # the weekly summary's
    ):
        for action in Action:
            assert not notices.wanted(server, delivery, action)
    rewritten = _task(forwarded_from="d0", original_recipient="old@x.test").delivery
    assert notices.wanted(server, rewritten, Action.FAILED)


def test_the_delay_warning_is_due_once_after_the_effective_time(server: Server) -> None:
    task = _task()
    assert not notices.delay_warning_due(server, task, ACCEPTED + 29 * 60)
    assert notices.delay_warning_due(server, task, ACCEPTED + 30 * 60)
    task.delay_warned = True
    assert not notices.delay_warning_due(server, task, ACCEPTED + 60 * 60)
    # The campaign retry profile sets no delay_warning_after of its own in the dev policy:
    # the server's applies; a profile's null turns warnings off.
    data = yaml.safe_load(DEV_POLICY.read_text())
    profile = data["servers"]["default"]["retry"]["profiles"][0]
    profile["delay_warning_after"] = None
    quiet = parse_policy(yaml.safe_dump(data)).server("default")
    campaign = _task()
    campaign.delivery.headers.append(delivery_pb2.Header(name="X-Category", value="campaign"))
    assert notices.delay_warning_due(server, campaign, ACCEPTED + 3600)
    assert not notices.delay_warning_due(quiet, campaign, ACCEPTED + 3600)
    profile["delay_warning_after"] = "5m"
    sooner = parse_policy(yaml.safe_dump(data)).server("default")
    assert notices.delay_warning_due(sooner, campaign, ACCEPTED + 300)
    assert not notices.delay_warning_due(sooner, _task(), ACCEPTED + 300)
    # NOTIFY without DELAY: no warning.
    assert not notices.delay_warning_due(
        server, _task(dsn_request(notify=NOTIFY["failure"])), ACCEPTED + 3600
    )


# -- the notice -------------------------------------------------------------------------------


def _parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _notice(
    server: Server,
    action: Action,
    result_reply: tuple[int, str, str] | None,
    *,
    dsn: delivery_pb2.DsnRequest | None = None,
    reason: str = "",
    language: str = "en",
) -> bytes:
    task = _task(dsn)
    result = _result(task, *result_reply) if result_reply else None
    notice = notices.notice_for(
        server, action, task, result, ACCEPTED + 600, reason=reason, language=language
    )
    return compose(notice, datetime.fromtimestamp(ACCEPTED + 601, tz=UTC))


def test_a_failure_notice_is_an_rfc_3464_report(server: Server) -> None:
    request = dsn_request(
        notify=NOTIFY["failure"],
        orcpt="rfc822;Original@x.test",
        ret=delivery_pb2.DSN_RETURN_FULL,
        envid="QQ314159",
    )
    raw = _notice(server, Action.FAILED, (550, "5.1.1", "<a@x.test>: User unknown"), dsn=request)
    message = _parse(raw)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert message["From"] == "Mail Delivery System <mailer-daemon@bounce.example.test>"
    assert message["To"] == "<app@example.test>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["References"] == "<m1@app.example.test>"
    human, status, returned = message.get_payload()
    assert human.get_content_type() == "text/plain"
    assert "<a@x.test>: 550 5.1.1 <a@x.test>: User unknown" in human.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_recipient = status.get_payload()  # the stdlib splits the two blocks
    assert per_message["Reporting-MTA"] == "dns; bounce.example.test"
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert per_message["Arrival-Date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert per_recipient["Original-Recipient"] == "rfc822;Original@x.test"
    assert per_recipient["Final-Recipient"] == "rfc822; a@x.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.x.test"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 <a@x.test>: User unknown"
    assert per_recipient["Last-Attempt-Date"] == "Fri, 15 Jan 2027 08:10:00 +0000"
    assert per_recipient["Will-Retry-Until"] is None
    # RET=FULL: the whole message comes back.
    assert returned.get_content_type() == "message/rfc822"
    [inner] = returned.get_payload()
    assert inner["Subject"] == "Your order"
    assert inner.get_payload() == "The body line.\r\n"

    [verdict] = classify_mail(raw)[1]
    assert (verdict.recipient, verdict.status, verdict.delivery) == ("a@x.test", 2, "failed")


def test_a_delay_warning_says_until_when_and_returns_headers_by_default(
    server: Server,
) -> None:
    raw = _notice(server, Action.DELAYED, (451, "4.7.1", "Greylisted, try again later"))
    message = _parse(raw)
    assert message["Subject"] == "Delayed Mail (still being retried)"
    human, status, returned = message.get_payload()
    assert "THIS IS A WARNING ONLY" in human.get_payload()
    per_message, per_recipient = status.get_payload()
    assert per_message["Original-Envelope-Id"] is None
    assert per_recipient["Original-Recipient"] is None
    assert per_recipient["Action"] == "delayed"
    assert per_recipient["Status"] == "4.7.1"
    assert per_recipient["Will-Retry-Until"] == "Fri, 15 Jan 2027 12:00:00 +0000"
    assert returned.get_content_type() == "text/rfc822-headers"
    assert "Subject: Your order" in returned.get_payload()
    assert "The body line." not in returned.get_payload()

    [verdict] = classify_mail(raw)[1]
    assert (verdict.recipient, verdict.delivery) == ("a@x.test", "deferred")


def test_a_success_notice(server: Server) -> None:
    raw = _notice(server, Action.DELIVERED, (250, "2.0.0", "Ok: queued as X1"))
    _, status, _ = _parse(raw).get_payload()
    _, per_recipient = status.get_payload()
    assert (per_recipient["Action"], per_recipient["Status"]) == ("delivered", "2.0.0")
    assert classify_mail(raw)[1] == []  # a receipt, not a failure


def test_postlines_own_reasons(server: Server) -> None:
    expired = _notice(
        server,
        Action.FAILED,
        (421, "4.4.2", "try again later"),
        reason="resend period ended after 3 attempts; last reply: 421 4.4.2 try again later",
    )
    _, status, _ = _parse(expired).get_payload()
    _, per_recipient = status.get_payload()
    assert per_recipient["Status"] == "4.4.7"
    assert per_recipient["Diagnostic-Code"].startswith("x-postline; resend period ended")
    [verdict] = classify_mail(expired)[1]
    assert (verdict.status, verdict.delivery) == (3, "failed")  # resend timeout

    blocked = _notice(
        server,
        Action.FAILED,
        None,
        reason="blocked: a@x.test is on the suppression list of default",
    )
    _, status, _ = _parse(blocked).get_payload()
    _, per_recipient = status.get_payload()
    assert per_recipient["Status"] == "5.7.1"
    assert per_recipient["Remote-MTA"] is None


def test_japanese_where_the_api_user_says_so(server: Server) -> None:
    raw = _notice(server, Action.FAILED, (550, "5.1.1", "User unknown"), language="ja")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert "配信できませんでした" in str(message["Subject"])
    human = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    assert "配信できませんでした" in human.get_content()
    [verdict] = classify_mail(raw)[1]
    assert verdict.status == 2


def test_a_notice_made_again_after_a_crash_is_the_same_delivery(server: Server) -> None:
    # The scheduler died after the notice was published, before its result was acked: the
    # result comes again and the notice is made again — as the same delivery accepted at the
    # same moment, so the log has one row (it is keyed by both) and the statistics one queued
    # event (the events' ids follow the delivery's).
    broker = RecordingBroker()
    task = _task()
    result = _result(task, 550, "5.1.1", "User unknown")

    async def send_twice() -> None:
        for now in (ACCEPTED + 601, ACCEPTED + 605):
            sender = notices.Notices(broker)  # type: ignore[arg-type]
            assert await sender.send(server, Action.FAILED, task, result, now)
        assert await sender.send(server, Action.DELAYED, task, result, ACCEPTED + 606)

    asyncio.run(send_twice())
    first, again, delayed = broker.deliveries
    assert first.delivery_id == again.delivery_id and first.message_id == again.message_id
    assert first.accepted_at == again.accepted_at == result.finished_at
    assert [e.accepted_at for e in broker.events[:2]] == [first.accepted_at] * 2
    assert first.delivery_id != task.delivery.delivery_id
    assert delayed.delivery_id not in {first.delivery_id, task.delivery.delivery_id}
    assert len({event.event_id for event in broker.events}) == 2
