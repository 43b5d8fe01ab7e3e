"""Waiting in a gate for a grant (``gates.granted``): the grant, a let-go, and the time limit
after which a delivery goes back to its backlog queue without holding a slot."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from postline.common.policy import SpeedLimit
from postline.scheduler.gates import Gate, Gates, granted
from postline.scheduler.pauses import PausedDomains

LIMIT = SpeedLimit(
    key="domain:x.test",
    group=None,
    connections=1,
    interval=timedelta(0),
    rate=None,
    messages_per_connection=100,
    source_ips=1,
    rule=None,
)


T0 = 1_800_000_000.0


def _gates() -> Gates:
    return Gates(lambda: T0, PausedDomains(lambda: T0), claimed_at=0.0)


async def _slot_taken() -> tuple[Gates, Gate, str]:
    """A gate of one connection whose slot is granted: the next waiter waits."""
    gates = _gates()
    gate = gates.gate("main", LIMIT)
    first = await granted(gates.wait(gate, 1), timeout=60)
    assert first is not None
    return gates, gate, first


async def test_a_free_slot_is_granted_at_once() -> None:
    gates = _gates()
    gate = gates.gate("main", LIMIT)
    grant_id = await granted(gates.wait(gate, 1), timeout=60)
    assert grant_id is not None
    assert list(gate.state.in_flight) == [grant_id]


async def test_a_waiter_gets_the_slot_a_result_frees() -> None:
    gates, gate, first = await _slot_taken()
    waiting = asyncio.ensure_future(granted(gates.wait(gate, 1), timeout=60))
    await asyncio.sleep(0)
    assert not waiting.done()
    gates.free(gate, first)
    second = await waiting
    assert second is not None and second != first
    assert list(gate.state.in_flight) == [second]


async def test_a_let_go_waiter_gets_none() -> None:
    gates, gate, _ = await _slot_taken()
    waiting = asyncio.ensure_future(granted(gates.wait(gate, 1), timeout=60))
    await asyncio.sleep(0)
    gates.let_go(gate)
    assert await waiting is None


async def test_a_waiter_past_its_time_gets_none_and_takes_no_slot_freed_later() -> None:
    gates, gate, first = await _slot_taken()
    assert await granted(gates.wait(gate, 1), timeout=0.01) is None
    gates.free(gate, first)
    assert not gate.state.in_flight  # the slot stays free for the next one
    assert not gate.waiters


async def test_a_cancelled_waiter_takes_no_slot_freed_later() -> None:
    gates, gate, first = await _slot_taken()
    waiting = asyncio.ensure_future(granted(gates.wait(gate, 1), timeout=60))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    gates.free(gate, first)
    assert not gate.state.in_flight
