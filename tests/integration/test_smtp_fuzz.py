"""The SMTP relay against a fuzzer (``tests/smtp_fuzz.py``): every answer a proper reply with
its enhanced status, no unexpected error behind one, and the relay alive throughout.

A bounded run here (``POSTLINE_FUZZ_CASES``, 400 by default); ``make fuzz`` runs 10,000+
cases and writes the figures recorded in bench/README.md.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.smtp_support import LoopThread, Relay, policy, running_relay
from tests.smtp_fuzz import Report, fuzz

CASES = int(os.environ.get("POSTLINE_FUZZ_CASES", "400"))
FIRST_SEED = int(os.environ.get("POSTLINE_FUZZ_SEED", "0"))
REPORT = os.environ.get("POSTLINE_FUZZ_REPORT")

logger = logging.getLogger(__name__)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.mark.timeout(max(300, CASES // 5))
def test_the_relay_answers_every_case_properly(loop: LoopThread, amqp_url: str) -> None:
    relay_policy = policy({"plain_auth_on_loopback": True, "max_connections": 50})
    relay = Relay(amqp_url, relay_policy)
    started = time.monotonic()
    with running_relay(loop, relay):

        def progress(report: Report) -> None:
            if report.cases % 1000 == 0:
                logger.warning("%d cases, %d failures", report.cases, len(report.failures))

        report = loop.run(
            fuzz(
                relay.host,
                relay.port,
                hostname=relay.hostname.encode(),
                cases=CASES,
                first_seed=FIRST_SEED,
                progress=progress,
            ),
            timeout=max(300, CASES // 5),
        )
    elapsed = time.monotonic() - started
    if REPORT:
        Path(REPORT).write_text(
            json.dumps(
                {
                    "cases": report.cases,
                    "replies": report.replies,
                    "seconds": round(elapsed, 1),
                    "commands": report.kinds,
                    "failures": [
                        {"seed": v.case.seed, "problems": v.problems} for v in report.failures
                    ],
                    "dead": report.dead,
                },
                indent=2,
            )
        )
    assert report.cases == CASES
    assert not report.dead, report.dead
    problems = [f"seed {v.case.seed}: {v.problems[0]}" for v in report.failures]
    assert not problems, f"{len(problems)} failing cases, e.g. {problems[:10]}"
