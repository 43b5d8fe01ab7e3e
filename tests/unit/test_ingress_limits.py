"""The relay's connection gate and per-IP token buckets (pure logic, a fake clock)."""

from __future__ import annotations

from typing import Any

import yaml

from postline.common.policy import Policy, Rate, parse_policy
from postline.ingress.limits import ConnectionGate, RateLimiter


def _policy(**servers: dict[str, Any]) -> Policy:
    data = {
        "version": 1,
        "servers": {
            name: {"relay": relay, "return_path_domain": "bounce.example.test"}
            for name, relay in servers.items()
        },
    }
    return parse_policy(yaml.safe_dump(data))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- connections -------------------------------------------------------------------------------


def test_one_server_admits_exactly_max_connections() -> None:
    gate = ConnectionGate(_policy(default={"max_connections": 2}))
    slots = [gate.open("192.0.2.1", ["default"]) for _ in range(3)]
    assert slots[0] is not None and slots[1] is not None and slots[2] is None
    gate.close(slots[0])
    gate.close(slots[0])  # closing twice is harmless (a connection may report its loss twice)
    assert gate.open_connections == 1
    assert gate.open("192.0.2.1", ["default"]) is not None


def test_accepting_servers_follow_allowed_ips() -> None:
    gate = ConnectionGate(
        _policy(
            inside={"allowed_ips": ["10.0.0.0/8"]},
            anyone={},
        )
    )
    assert sorted(gate.accepting_servers("10.1.2.3")) == ["anyone", "inside"]
    assert gate.accepting_servers("192.0.2.1") == ["anyone"]
    assert sorted(gate.accepting_servers("::ffff:10.1.2.3")) == ["anyone", "inside"]


def test_unassigned_connections_count_against_every_accepting_server() -> None:
    gate = ConnectionGate(_policy(a={"max_connections": 3}, b={"max_connections": 1}))
    both = ["a", "b"]
    slots = [gate.open("192.0.2.1", both) for _ in range(4)]
    assert all(slots)  # 3 + 1 places in total
    assert gate.open("192.0.2.1", both) is None
    # A client only b accepts finds no room: the unassigned four may all be b's.
    assert gate.open("192.0.2.9", ["b"]) is None


def test_assignment_checks_the_servers_own_limit() -> None:
    gate = ConnectionGate(_policy(a={"max_connections": 5}, b={"max_connections": 1}))
    first, second = gate.open("192.0.2.1", ["a", "b"]), gate.open("192.0.2.2", ["a", "b"])
    assert first is not None and second is not None
    assert gate.assign(first, "b")
    assert gate.assign(first, "b")  # already there
    assert not gate.assign(second, "b")
    assert second.server is None  # unchanged, still counted as unassigned
    assert gate.assign(second, "a")
    assert gate.open_connections == 2
    gate.close(first)
    gate.close(second)
    assert gate.open_connections == 0
    third = gate.open("192.0.2.3", ["b"])
    assert third is not None and gate.assign(third, "b")


def test_an_assigned_connection_frees_room_for_others() -> None:
    gate = ConnectionGate(_policy(a={"max_connections": 1}, b={"max_connections": 1}))
    slot = gate.open("192.0.2.1", ["a", "b"])
    assert slot is not None and gate.assign(slot, "a")
    assert gate.open("192.0.2.2", ["a"]) is None
    assert gate.open("192.0.2.2", ["b"]) is not None


# -- rate per IP -------------------------------------------------------------------------------


def test_a_full_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    rate = Rate(3, 60)  # 3/min: one every 20 s after the burst
    assert [limiter.allow("s", "192.0.2.1", rate) for _ in range(4)] == [True, True, True, False]
    clock.now += 19.9
    assert not limiter.allow("s", "192.0.2.1", rate)
    clock.now += 0.2
    assert limiter.allow("s", "192.0.2.1", rate)
    assert not limiter.allow("s", "192.0.2.1", rate)


def test_buckets_are_per_server_and_ip() -> None:
    limiter = RateLimiter(Clock())
    rate = Rate(1, 1)
    assert limiter.allow("s", "192.0.2.1", rate)
    assert not limiter.allow("s", "192.0.2.1", rate)
    assert limiter.allow("s", "192.0.2.2", rate)
    assert limiter.allow("t", "192.0.2.1", rate)


def test_refilled_buckets_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    limiter.PRUNE_ABOVE = 3
    slow = Rate(1, 3600)
    fast = Rate(10, 1)
    limiter.allow("s", "192.0.2.1", slow)
    limiter.allow("s", "192.0.2.2", fast)
    limiter.allow("s", "192.0.2.3", fast)
    clock.now += 1
    limiter.allow("s", "192.0.2.4", fast)  # over the limit: the refilled fast ones go
    assert len(limiter) == 2
    assert not limiter.allow("s", "192.0.2.1", slow)  # the slow one was remembered
