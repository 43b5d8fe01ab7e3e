"""The floor benchmark's sum (``bench/floor/run.py``): which measured parts a delivery's path
takes, how often, and which Postline process each one's CPU stands for."""

from __future__ import annotations

from bench.floor.run import GROUPED, PATH, budget_ms, floor_sum

HOP = {"publisher": 0.1, "consumer": 0.2, "rabbitmq": 0.3}
FIGURES = {
    "accept": {"server": 0.5, "smtp-source": 9.0},
    "hop deliveries batched": HOP,
    "hop tasks": {"publisher": 1.0, "consumer": 1.0, "rabbitmq": 1.0},
    "hop tasks batched": HOP,
    "hop results batched": HOP,
    "hop events batched": HOP,
    "codec": {"scheduler+sender": 0.02},
    "send": {"client": 0.07, "smtp-sink": 9.0},
    "ingest": {"reports": 0.05},
}


def test_each_step_counts_its_processes_times_its_units_and_not_the_load_or_the_sink() -> None:
    floor = floor_sum(FIGURES)

    assert floor["missing"] == []
    # accept 0.5, deliveries 0.6, tasks 3.0, results 0.6, codec 0.02, send 0.07, two event
    # hops 1.2, two events ingested 0.1
    assert floor["total_ms"] == 6.09
    assert floor["steps"]["2 events ingested into ClickHouse"] == 0.1
    assert floor["processes"] == {
        "ingress": 0.7,  # accept, deliveries published, the queued event published
        "scheduler": 1.52,  # deliveries and results taken, tasks and an event published, codec
        "sender": 1.17,  # tasks taken, the SMTP client, results published
        "rabbitmq": 2.2,
        "reports": 0.5,  # two events taken, two ingested
    }
    assert round(sum(floor["processes"].values()), 3) == floor["total_ms"]


def test_grouped_tasks_replace_only_the_task_hop() -> None:
    as_designed, grouped = floor_sum(FIGURES), floor_sum(FIGURES, GROUPED)

    assert round(as_designed["total_ms"] - grouped["total_ms"], 3) == 3.0 - 0.6
    assert [s.part for s in GROUPED if s not in PATH] == ["hop tasks batched"]


def test_a_part_not_measured_is_missing_not_zero() -> None:
    figures = {part: f for part, f in FIGURES.items() if part != "ingest"}

    floor = floor_sum(figures)

    assert floor["missing"] == ["2 events ingested into ClickHouse"]
    assert floor["total_ms"] == 5.99


def test_budget_of_two_cores_at_postfix_rate() -> None:
    assert budget_ms(606) == 3.3
    assert budget_ms(1000, cores=1) == 1.0
