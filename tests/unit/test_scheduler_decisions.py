"""The scheduler's pure decisions: routes, priority, retry timing and expiry, with any clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from postline.common.policy import load_policy
from postline.scheduler import decisions
from postline.v1 import delivery_pb2

DEV_POLICY = Path(__file__).resolve().parents[2] / "postline.dev.yaml"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def server():  # type: ignore[no-untyped-def]
    return load_policy(DEV_POLICY).server("default")


def _delivery(recipient: str = "a@x.test", **headers: str) -> delivery_pb2.AcceptedDelivery:
    return delivery_pb2.AcceptedDelivery(
        delivery_id="d1",
        server="default",
        recipient=recipient,
        recipient_domain=recipient.rsplit("@", 1)[1].lower(),
        headers=[
            delivery_pb2.Header(name=k.replace("_", "-"), value=v) for k, v in headers.items()
        ],
    )


def test_routes_send_test_domains_to_the_simulator(server) -> None:  # type: ignore[no-untyped-def]
    route = decisions.route_for(server, "a.test")
    assert (route.host, route.port, route.tls) == (
        "127.0.0.1",
        2600,
        delivery_pb2.TLS_MODE_OPPORTUNISTIC,
    )
    assert decisions.route_for(server, "example.com").host == ""  # MX lookup


def test_priority_comes_from_the_first_matching_filter(server) -> None:  # type: ignore[no-untyped-def]
    assert decisions.priority_for(server, _delivery(X_Category="receipt")) == 3
    assert decisions.priority_for(server, _delivery(X_Category="campaign")) == 1
    assert decisions.priority_for(server, _delivery()) == delivery_pb2.PRIORITY_NORMAL


def test_first_task_carries_route_priority_and_resend_deadline(server) -> None:  # type: ignore[no-untyped-def]
    task = decisions.first_task(server, _delivery(X_Category="campaign"), shard=3, now=NOW)
    assert task.attempt == 1 and task.shard == 3
    assert task.route_host == "127.0.0.1" and task.route_port == 2600
    assert task.priority == delivery_pb2.PRIORITY_LOW
    # The campaign retry profile: a 24 h resend period instead of the default 4 h.
    assert task.expires_at.ToSeconds() == int(NOW + 24 * 3600)


def _result(task: delivery_pb2.DeliveryTask, outcome: int) -> delivery_pb2.DeliveryResult:
    return delivery_pb2.DeliveryResult(task=task, outcome=outcome, reply_code=451)  # type: ignore[arg-type]


def test_temporary_failure_is_retried_after_the_interval(server) -> None:  # type: ignore[no-untyped-def]
    task = decisions.first_task(server, _delivery(), shard=0, now=NOW)
    decision = decisions.after_result(server, _result(task, delivery_pb2.OUTCOME_DEFERRED), NOW)
    assert decision == decisions.Retry(not_before=NOW + 600)  # the default 10 minutes
    again = decisions.next_task(_result(task, delivery_pb2.OUTCOME_DEFERRED))
    assert again.attempt == 2 and again.delivery.delivery_id == "d1"


def test_retries_end_with_expiry_after_the_resend_period(server) -> None:  # type: ignore[no-untyped-def]
    task = decisions.first_task(server, _delivery(), shard=0, now=NOW)
    late = NOW + 4 * 3600 - 60  # the next attempt would fall after the 4 h period
    decision = decisions.after_result(server, _result(task, delivery_pb2.OUTCOME_DEFERRED), late)
    assert isinstance(decision, decisions.Expired)
    assert "resend period" in decision.reason


def test_final_outcomes(server) -> None:  # type: ignore[no-untyped-def]
    task = decisions.first_task(server, _delivery(), shard=0, now=NOW)
    ok = decisions.after_result(server, _result(task, delivery_pb2.OUTCOME_SUCCEEDED), NOW)
    bad = decisions.after_result(server, _result(task, delivery_pb2.OUTCOME_FAILED), NOW)
    assert ok == decisions.Final(succeeded=True)
    assert bad == decisions.Final(succeeded=False)


def test_the_resend_period_runs_from_acceptance(server) -> None:  # type: ignore[no-untyped-def]
    delivery = _delivery()
    delivery.accepted_at.FromSeconds(int(NOW - 3600))  # accepted an hour ago, held since
    task = decisions.first_task(server, delivery, shard=0, now=NOW)
    assert task.expires_at.ToSeconds() == int(NOW - 3600 + 4 * 3600)


def test_a_reply_asking_for_a_later_retry_wins_over_the_interval(server) -> None:  # type: ignore[no-untyped-def]
    task = decisions.first_task(server, _delivery(), shard=0, now=NOW)
    result = _result(task, delivery_pb2.OUTCOME_DEFERRED)
    result.reply_text = "4.7.1 Greylisted, please try again in 30 minutes"
    decision = decisions.after_result(server, result, NOW)
    assert decision == decisions.Retry(not_before=NOW + 1800, asked=1800)
    result.reply_text = "4.7.1 try again in 1 minute"  # shorter than the interval: interval
    assert decisions.after_result(server, result, NOW) == decisions.Retry(NOW + 600, asked=60)


def test_a_retry_needs_a_grant_of_its_own(server) -> None:  # type: ignore[no-untyped-def]
    task = decisions.first_task(server, _delivery(), shard=0, now=NOW)
    task.grant_id = "g1"
    task.granted_at.FromSeconds(int(NOW))
    again = decisions.next_task(_result(task, delivery_pb2.OUTCOME_DEFERRED))
    assert again.attempt == 2 and not again.grant_id and not again.HasField("granted_at")


TOKYO_0759 = 1_893_970_740.0  # 2030-01-06T22:59:00Z, 07:59 on Monday in Tokyo
TOKYO_0800 = TOKYO_0759 + 60


def test_prohibited_hours_hold_until_the_window_ends(server) -> None:  # type: ignore[no-untyped-def]
    campaign = decisions.first_task(server, _delivery(X_Category="campaign"), 0, TOKYO_0759)
    assert decisions.hold_until(server, campaign, TOKYO_0759) == TOKYO_0800
    assert decisions.hold_until(server, campaign, TOKYO_0800) is None
    # 21:00 the evening before: held overnight, across midnight.
    evening = TOKYO_0759 - 11 * 3600 + 60
    assert decisions.hold_until(server, campaign, evening) == TOKYO_0800
    # Other mail is never held.
    receipt = decisions.first_task(server, _delivery(X_Category="receipt"), 0, TOKYO_0759)
    assert decisions.hold_until(server, receipt, TOKYO_0759) is None


def test_release_after_a_hold_is_spread_and_stable() -> None:
    spreads = [decisions.release_spread(f"d{i}", 300.0) for i in range(2000)]
    assert all(0 <= s < 300 for s in spreads)
    assert decisions.release_spread("d7", 300.0) == spreads[7]  # the same on every re-check
    # Spread over the whole window: no burst at the window's end.
    per_minute = [sum(1 for s in spreads if m * 60 <= s < (m + 1) * 60) for m in range(5)]
    assert min(per_minute) > 300 and max(per_minute) < 500
    assert decisions.release_spread("d1", 0) == 0
