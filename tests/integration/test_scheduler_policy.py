"""Policy decisions of the running scheduler on the real broker: prohibited hours, retries and
the resend period, delivery blocking, forwarding rules."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from postline.common.broker.topology import SUPPRESSION_KEY
from postline.common.timeutil import from_timestamp, to_timestamp
from postline.scheduler.forwarding import copy_id
from postline.v1 import delivery_pb2, events_pb2
from tests.integration.scheduler_support import (
    POLICY,
    Clock,
    accept,
    harness,
    owns_all,
    running,
    steady,
    write_policy,
)
from tests.polling import apoll_until

DEFERRED = events_pb2.DELIVERY_STATUS_DEFERRED
SUCCEEDED = events_pb2.DELIVERY_STATUS_SUCCEEDED
FAILED = events_pb2.DELIVERY_STATUS_FAILED

TOKYO = ZoneInfo("Asia/Tokyo")


async def test_prohibited_hours_hold_matching_deliveries_until_the_window_ends(
    amqp_url: str, tmp_path: Path
) -> None:
    window_end = datetime(2030, 1, 7, 8, 0, tzinfo=TOKYO).timestamp()
    clock = Clock(at=window_end - 60)
    policy = write_policy(tmp_path, rest=POLICY)
    async with (
        harness(amqp_url) as (broker, senders, events),
        running(amqp_url, policy, clock) as svc,
    ):
        await owns_all(svc)
        # 07:59:54 in Tokyo, inside 21:00-08:00, once the scheduler is up (a start-up on a
        # busy machine took longer than a few seconds and the window had ended).
        clock.shift(window_end - 6 - clock())
        campaign = await accept(broker, "fan@a.test", headers={"X-Category": "campaign"})
        receipt = await accept(broker, "buyer@a.test", headers={"X-Category": "receipt"})

        # The receipt goes at once; the campaign mail is held and says until when.
        await apoll_until(lambda: senders.for_rcpt("buyer@a.test"), "the receipt's task")
        held = (await apoll_until(lambda: events.of(campaign.delivery_id, DEFERRED), "held"))[0]
        assert "prohibited hours" in held.reason
        assert from_timestamp(held.next_attempt_at) == window_end
        assert held.attempt == 0
        assert not senders.for_rcpt("fan@a.test")
        assert events.of(receipt.delivery_id, DEFERRED) == []

        task = (await apoll_until(lambda: senders.for_rcpt("fan@a.test"), "release", 20))[0]
        assert from_timestamp(task.granted_at) >= window_end
        assert task.attempt == 1
        assert len(events.of(campaign.delivery_id, DEFERRED)) == 1  # one event per hold


async def test_a_temporary_failure_is_retried_after_the_interval(
    amqp_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, rest=POLICY)
    async with harness(amqp_url) as (broker, senders, events), running(amqp_url, policy) as svc:
        await owns_all(svc)
        delivery = await accept(broker, "greylist@a.test")
        first = (await apoll_until(lambda: senders.for_rcpt("greylist@a.test"), "attempt 1"))[0]
        await senders.answer(
            first, delivery_pb2.OUTCOME_DEFERRED, 451, "4.7.1 Greylisted, try again later"
        )
        deferred = (await apoll_until(lambda: events.of(delivery.delivery_id, DEFERRED), "x"))[0]
        assert from_timestamp(deferred.next_attempt_at) - from_timestamp(deferred.at) == 1.0
        assert deferred.reply_code == 451

        tasks = await apoll_until(
            lambda: len(senders.for_rcpt("greylist@a.test")) == 2
            and senders.for_rcpt("greylist@a.test"),
            "attempt 2",
        )
        second = tasks[1]
        assert second.attempt == 2 and second.grant_id != first.grant_id
        await senders.answer(second)
        succeeded = await apoll_until(lambda: events.of(delivery.delivery_id, SUCCEEDED), "ok")
        assert succeeded[0].attempt == 2


async def test_a_reply_asking_for_a_later_retry_is_respected(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, rest=POLICY)
    async with harness(amqp_url) as (broker, senders, events), running(amqp_url, policy) as svc:
        await owns_all(svc)
        delivery = await accept(broker, "busy@a.test")
        first = (await apoll_until(lambda: senders.for_rcpt("busy@a.test"), "attempt 1"))[0]
        await senders.answer(
            first, delivery_pb2.OUTCOME_DEFERRED, 450, "4.7.1 Too busy, retry after 3 seconds"
        )
        deferred = (await apoll_until(lambda: events.of(delivery.delivery_id, DEFERRED), "x"))[0]
        wait = from_timestamp(deferred.next_attempt_at) - from_timestamp(deferred.at)
        assert wait == 3.0  # not the 1 s interval
        second = (await apoll_until(lambda: senders.for_rcpt("busy@a.test")[1:], "attempt 2", 15))[
            0
        ]
        assert from_timestamp(second.granted_at) >= from_timestamp(deferred.next_attempt_at)


async def test_retries_end_with_status_3_after_the_resend_period(
    amqp_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, rest=POLICY)
    async with harness(amqp_url) as (broker, senders, events), running(amqp_url, policy) as svc:
        await owns_all(svc)
        delivery = await accept(broker, "tempfail@a.test", headers={"X-Category": "bulk"})

        async def always_defer() -> bool:
            for task in list(senders.pending.values()):
                await senders.answer(
                    task, delivery_pb2.OUTCOME_DEFERRED, 421, "4.4.2 try again later"
                )
            return bool(events.of(delivery.delivery_id, FAILED))

        for _ in range(200):
            if await always_defer():
                break
            await apoll_until(
                lambda: senders.pending or events.of(delivery.delivery_id, FAILED), "progress"
            )
        failed = events.of(delivery.delivery_id, FAILED)[0]
        assert failed.error_status == events_pb2.ERROR_STATUS_RESEND_TIMEOUT
        assert "resend period" in failed.reason
        error = next(e for e in events.errors if e.delivery_id == delivery.delivery_id)
        assert error.status == events_pb2.ERROR_STATUS_RESEND_TIMEOUT
        assert error.source == events_pb2.ERROR_SOURCE_POLICY
        attempts = len(senders.for_rcpt("tempfail@a.test"))
        assert 2 <= attempts <= 4  # every 1 s within the bulk profile's 3 s period
        assert len(events.of(delivery.delivery_id, DEFERRED)) == attempts - 1


async def test_a_suppressed_recipient_fails_with_status_10_and_is_never_sent(
    amqp_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, rest=POLICY)
    async with harness(amqp_url) as (broker, senders, events), running(amqp_url, policy) as svc:
        await owns_all(svc)
        change = events_pb2.SuppressionChange(
            server="default",
            address="gone@a.test",
            action=events_pb2.SUPPRESSION_ACTION_ADD,
            reason="5.1.1 user unknown",
            at=to_timestamp(svc.clock()),
        )
        await broker.publish(SUPPRESSION_KEY, change)
        await apoll_until(
            lambda: svc.suppressions.is_suppressed("default", "gone@a.test"), "the change"
        )
        blocked = await accept(broker, "Gone@A.test")
        failed = (await apoll_until(lambda: events.of(blocked.delivery_id, FAILED), "failed"))[0]
        assert failed.error_status == events_pb2.ERROR_STATUS_BLOCKED_ADDRESS
        error = next(e for e in events.errors if e.delivery_id == blocked.delivery_id)
        assert error.status == events_pb2.ERROR_STATUS_BLOCKED_ADDRESS
        assert error.source == events_pb2.ERROR_SOURCE_POLICY
        await steady(
            lambda: all(t.delivery.is_notice for t in senders.tasks),
            "no task for a blocked address",
        )
        # The submitter hears of it: a failure notice, with the null sender, to app@.
        [notice] = await apoll_until(lambda: senders.for_rcpt("app@example.test"), "the notice")
        assert notice.delivery.is_notice and notice.delivery.envelope_from == ""
        assert b"Action: failed\r\nStatus: 5.7.1\r\n" in notice.delivery.content
        assert b"Final-Recipient: rfc822; Gone@A.test\r\n" in notice.delivery.content

        change.action = events_pb2.SUPPRESSION_ACTION_REMOVE
        await broker.publish(SUPPRESSION_KEY, change)
        await apoll_until(
            lambda: not svc.suppressions.is_suppressed("default", "gone@a.test"), "the removal"
        )
        again = await accept(broker, "gone@a.test")
        await apoll_until(lambda: senders.for_rcpt("gone@a.test"), "a task once unblocked")
        assert events.of(again.delivery_id, FAILED) == []


async def test_forwarding_copies_and_rewrites_without_loops(amqp_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, rest=POLICY)
    async with harness(amqp_url) as (broker, senders, events), running(amqp_url, policy) as svc:
        await owns_all(svc)
        order = await accept(broker, "buyer@a.test", headers={"Subject": "Order confirmation #12"})
        moved = await accept(broker, "old@a.test")

        await apoll_until(lambda: senders.for_rcpt("buyer@a.test"), "the original")
        copy = (await apoll_until(lambda: senders.for_rcpt("archive@archive.test"), "copy"))[0]
        assert copy.delivery.delivery_id == copy_id(order.delivery_id, "archive@archive.test")
        assert copy.delivery.message_id == order.message_id
        assert copy.delivery.forwarded_from == order.delivery_id
        queued = events.of(copy.delivery.delivery_id, events_pb2.DELIVERY_STATUS_QUEUED)
        assert queued and queued[0].recipient == "archive@archive.test"

        rewritten = (await apoll_until(lambda: senders.for_rcpt("new@moved.test"), "rewrite"))[0]
        assert rewritten.delivery.delivery_id == moved.delivery_id
        assert rewritten.delivery.original_recipient == "old@a.test"
        assert rewritten.speed_key == "domain:moved.test"

        # The copy to archive@ matches the second rule, but a forwarded delivery is final.
        await steady(lambda: not senders.for_rcpt("loop@a.test"), "no forwarding loop")
        assert not senders.for_rcpt("old@a.test")
        assert len(senders.tasks) == 3
