"""A destination's connection limit holds whatever the number of sender and scheduler
processes, with sessions reused (``messages_per_connection`` well above 1).

The scheduler keeps the deliveries in flight within the limit; each sender keeps idle SMTP
sessions for reuse, and before senders shared the limit (``sender/membership.py``) three
senders each kept up to ``connections`` of them: the destination saw up to three times its
limit. Every process is real (two schedulers, three senders, mail over SMTP); the simulator
counts the connections open at once, idle ones included (its per-domain figure only counts
sessions in a transaction, which the scheduler's grants bound anyway).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.scheduler_support import Running, scheduler_stack, send
from tests.polling import poll_until

pytestmark = pytest.mark.e2e

LIMITED = "limited.test"  # connections: 4, sessions reused
NARROW = "narrow.test"  # connections: 2, fewer than the senders
PER_DOMAIN = 240
SERVER = {
    "speed": [
        {"match": ["*"], "connections": 20, "interval": "0s", "rate": None},
        {"match": [LIMITED], "connections": 4, "messages_per_connection": 100},
        {"match": [NARROW], "connections": 2, "messages_per_connection": 100},
    ],
    "priority": [],
    "prohibited_hours": [],
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("sender-limits")
    with scheduler_stack(tmp, SERVER, schedulers=2, senders=3, simulator_slow_seconds=0.05) as run:
        yield run


def run_to(system: Running, domain: str) -> dict[str, int]:
    """Send PER_DOMAIN deliveries to ``domain`` alone and return the simulator's connection
    counts (only the senders connect to it, so every connection is one to ``domain``)."""
    stack, simulator = system.stack, system.simulator
    poll_until(lambda: simulator.stats()["connections"]["current"] == 0, "no session left open")
    simulator.reset()
    recipients = [f"slow+{i}@{domain}" for i in range(PER_DOMAIN)]
    for start in range(0, len(recipients), 40):
        send(stack, recipients[start : start + 40])

    def delivered() -> set[str]:
        return {r.lower() for m in simulator.messages() for r in m["rcpt_tos"]}

    poll_until(lambda: delivered() >= set(recipients), f"every delivery to {domain}", 240)
    connections: dict[str, int] = simulator.stats()["connections"]
    print(domain, connections)
    return connections


def test_three_senders_keep_a_limit_of_4_connections_and_reuse_sessions(system: Running) -> None:
    connections = run_to(system, LIMITED)
    assert connections["peak"] <= 4, connections
    # Sessions were still reused: each sender keeps 4 // 3 = 1.
    assert connections["total"] < PER_DOMAIN / 4, connections


def test_a_limit_below_the_number_of_senders_holds_too(system: Running) -> None:
    connections = run_to(system, NARROW)
    assert connections["peak"] <= 2, connections
