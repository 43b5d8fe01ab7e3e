"""Speed accounting of one key, driven by a fake clock: connections, interval, rate, groups,
and what a new owner assumes after a failover."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from postline.common.policy import Rate, SpeedLimit, load_policy
from postline.scheduler.decisions import owner_shard
from postline.scheduler.speed import SpeedState

DEV_POLICY = Path(__file__).resolve().parents[2] / "postline.dev.yaml"
T0 = 1_800_000_000.0


def _limit(connections: int = 20, interval: float = 0, rate: Rate | None = None) -> SpeedLimit:
    return SpeedLimit(
        key="domain:x.test",
        group=None,
        connections=connections,
        interval=timedelta(seconds=interval),
        rate=rate,
        messages_per_connection=100,
        source_ips=1,
        rule=None,
    )


def _grants(state: SpeedState, limit: SpeedLimit, start: float, until: float) -> list[float]:
    """Grant whenever allowed between start and until (results come back at once)."""
    now, times = start, []
    while now < until:
        wait = state.wait(limit, now)
        assert wait is not None
        if wait == 0:
            state.grant(f"g{len(times)}", limit, now)
            state.release(f"g{len(times)}")
            times.append(now)
        else:
            now += wait
    return times


def test_connections_count_grants_until_their_results() -> None:
    state, limit = SpeedState(), _limit(connections=2)
    state.grant("a", limit, T0)
    state.grant("b", limit, T0)
    assert state.wait(limit, T0) is None  # only a result frees a slot
    assert state.wait(limit, T0 + 3600) is None
    assert state.release("a") is True
    assert state.wait(limit, T0) == 0
    assert state.release("a") is False  # a duplicate result frees nothing


def test_interval_is_a_minimum_gap() -> None:
    state, limit = SpeedState(), _limit(interval=2)
    state.grant("a", limit, T0)
    state.release("a")
    assert state.wait(limit, T0 + 0.5) == pytest.approx(1.5)
    assert state.wait(limit, T0 + 2) == 0


@pytest.mark.parametrize("rate", [Rate(120, 60), Rate(10, 1), Rate(20000, 3600)])
def test_rate_is_evenly_spaced_and_exact_over_time(rate: Rate) -> None:
    state, limit = SpeedState(), _limit(rate=rate)
    horizon = rate.per * 3
    times = _grants(state, limit, T0, T0 + horizon)
    assert len(times) == pytest.approx(rate.count * 3, abs=1)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= (rate.per / rate.count) * 0.9 - 1e-9


def test_a_late_grant_is_caught_up_not_lost() -> None:
    """Timers wake a little late; a backlogged key still runs at its rate on average."""
    state, limit = SpeedState(), _limit(rate=Rate(10, 1))
    now, count = T0, 0
    while now < T0 + 60:
        wait = state.wait(limit, now)
        assert wait is not None
        if wait == 0:
            state.grant(str(count), limit, now)
            state.release(str(count))
            count += 1
        else:
            now += wait + 0.004  # every wake-up 4 ms late
    assert count == pytest.approx(600, abs=2)


def test_interval_and_rate_together_take_the_stricter() -> None:
    state, limit = SpeedState(), _limit(interval=1, rate=Rate(600, 60))
    times = _grants(state, limit, T0, T0 + 10)
    assert len(times) == 10


def test_a_new_owner_assumes_a_grant_at_takeover() -> None:
    limit = _limit(interval=5, rate=Rate(1, 10))
    state = SpeedState()
    state.take_over(limit, claimed_at=T0)
    # The rate's next slot is one spacing (10 s) after the takeover, less its tolerance.
    assert state.wait(limit, T0 + 1) == pytest.approx(10 - 0.5 - 1)
    assert state.wait(limit, T0 + 10) == 0


def test_recovered_leases_count_and_expire() -> None:
    state, limit = SpeedState(), _limit(connections=1)
    state.recover("old", granted_at=T0 - 7200)
    assert state.wait(limit, T0) is None
    assert state.expired(before=T0 - 3600) == ["old"]
    state.release("old")
    assert state.wait(limit, T0) == 0


def test_next_release_is_when_the_next_grant_may_go() -> None:
    state, limit = SpeedState(), _limit(interval=3)
    assert state.next_release(limit, T0) is None
    state.grant("a", limit, T0)
    assert state.next_release(limit, T0 + 1) == pytest.approx(T0 + 3)


def test_group_keys_are_shared_and_owned_by_one_shard() -> None:
    server = load_policy(DEV_POLICY).server("default")
    docomo = server.speed_for("docomo.ne.jp")
    softbank = server.speed_for("SoftBank.ne.jp")
    assert docomo.key == softbank.key == "group:jp-mobile"
    assert (docomo.connections, docomo.rate) == (2, Rate(600, 60))
    assert owner_shard(docomo, "docomo.ne.jp", 8) == owner_shard(softbank, "softbank.ne.jp", 8)
    google = server.speed_for("example.com", mx_hosts=["aspmx.l.google.com"])
    assert google.key == "group:google" and google.connections == 50
    alone = server.speed_for("example.com")
    assert alone.key == "domain:example.com" and alone.connections == 20
