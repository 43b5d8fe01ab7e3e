"""The reports service's settings: POSTLINE_BATCH_RETRY, still read under its former name."""

from __future__ import annotations

import pytest

from postline.reports.settings import ReportsSettings


@pytest.fixture(autouse=True)
def _required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTLINE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    monkeypatch.setenv("POSTLINE_POLICY", "postline.yaml")
    monkeypatch.delenv("POSTLINE_BATCH_RETRY", raising=False)
    monkeypatch.delenv("POSTLINE_BATCH_HOLD", raising=False)


def test_a_failing_batch_is_retried_in_place_for_30_seconds_by_default() -> None:
    assert ReportsSettings().batch_retry == 30.0


def test_the_former_name_still_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTLINE_BATCH_HOLD", "7")
    assert ReportsSettings().batch_retry == 7.0


def test_the_name_wins_over_the_former_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTLINE_BATCH_HOLD", "7")
    monkeypatch.setenv("POSTLINE_BATCH_RETRY", "9")
    assert ReportsSettings().batch_retry == 9.0
