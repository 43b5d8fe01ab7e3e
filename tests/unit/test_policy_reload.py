"""Reloading the policy file: a ConfigMap's symlink swap, an invalid change kept out, metrics.

A Kubernetes ConfigMap volume holds ``postline.yaml -> ..data/postline.yaml`` and ``..data ->
..2024_01_01_00_00_00.123/``; an update writes a new timestamped directory and swaps
``..data`` (a rename over the link). The tests build exactly that layout.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from postline.common.policy import LivePolicy, Policy, PolicyError
from postline.common.semconv import METRIC_POLICY_FILE_VALID, METRIC_POLICY_INFO

REPO = Path(__file__).resolve().parents[2]
DEV = (REPO / "postline.dev.yaml").read_text()


class ConfigMapVolume:
    """A directory laid out like a mounted ConfigMap, updated the way kubelet updates it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0

    @property
    def path(self) -> Path:
        return self.root / "postline.yaml"

    def publish(self, text: str) -> None:
        self.generation += 1
        version = self.root / f"..2024_01_01_00_00_{self.generation:02d}.000"
        version.mkdir()
        (version / "postline.yaml").write_text(text)
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.root / "..data")  # the atomic swap
        if not self.path.is_symlink():
            self.path.symlink_to("..data/postline.yaml")


def with_rate(text: str, rate: str) -> str:
    assert "rate_per_ip: 100/s" in text
    return text.replace("rate_per_ip: 100/s", f"rate_per_ip: {rate}")


def rate_of(policy: Policy) -> str:
    return str(policy.server("default").relay.rate_per_ip)


def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    return REGISTRY.get_sample_value(name, labels or {})


@pytest.fixture
def volume(tmp_path: Path) -> ConfigMapVolume:
    volume = ConfigMapVolume(tmp_path)
    volume.publish(DEV)
    return volume


def test_a_configmap_swap_is_picked_up(volume: ConfigMapVolume) -> None:
    live = LivePolicy(volume.path, interval=0)
    first = live.version
    assert rate_of(live()) == "100/s"
    seen: list[Policy] = []
    live.on_change(seen.append)

    volume.publish(with_rate(DEV, "7/min"))

    assert live.check()
    assert rate_of(live()) == "7/min" and seen == [live()]
    assert live.version != first and live.status == f"policy {live.version}"
    assert sample(METRIC_POLICY_INFO, {"version": live.version}) == 1
    assert sample(METRIC_POLICY_INFO, {"version": first}) is None
    assert not live.check(), "the same content again is no change"


def test_an_invalid_change_keeps_the_policy_and_says_why(
    volume: ConfigMapVolume, caplog: pytest.LogCaptureFixture
) -> None:
    live = LivePolicy(volume.path, interval=0)
    before, version = live(), live.version

    volume.publish(DEV.replace("max_recipients:", "max_recipent:", 1))
    with caplog.at_level(logging.ERROR, logger="postline.common.policy.reload"):
        assert not live.check()

    assert live() is before and live.version == version
    assert "max_recipent: unknown key" in caplog.text and f"policy {version} stays" in caplog.text
    assert "invalid" in live.status and sample(METRIC_POLICY_FILE_VALID) == 0
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="postline.common.policy.reload"):
        assert not live.check()
    assert not caplog.text, "a rejected file is reported once, not at every look"

    volume.publish(with_rate(DEV, "9/min"))  # fixed
    assert live.check() and rate_of(live()) == "9/min"
    assert live.error is None and sample(METRIC_POLICY_FILE_VALID) == 1


def test_going_back_to_the_active_content_clears_the_error(volume: ConfigMapVolume) -> None:
    live = LivePolicy(volume.path, interval=0)
    volume.publish("version: 1\nservers: {}\n")
    assert not live.check() and live.error is not None
    volume.publish(DEV)
    assert not live.check(), "the policy in use did not change"
    assert live.error is None and sample(METRIC_POLICY_FILE_VALID) == 1


def test_a_file_that_disappears_keeps_the_policy(volume: ConfigMapVolume) -> None:
    live = LivePolicy(volume.path, interval=0)
    before = live()
    (volume.root / "..data").unlink()
    assert not live.check()
    assert live() is before and "cannot read policy file" in (live.error or "")


def test_an_invalid_file_at_start_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "postline.yaml"
    path.write_text("version: 1\nservers: {}\n")
    with pytest.raises(PolicyError, match="needs at least one server"):
        LivePolicy(path)


def test_the_watcher_applies_changes_by_itself(volume: ConfigMapVolume) -> None:
    async def scenario() -> str:
        live = LivePolicy(volume.path, interval=0.05)
        live.start()
        try:
            volume.publish(with_rate(DEV, "11/min"))
            for _ in range(200):
                if rate_of(live()) == "11/min":
                    break
                await asyncio.sleep(0.05)
            return rate_of(live())
        finally:
            await live.stop()

    assert asyncio.run(scenario()) == "11/min"


def test_a_policy_is_a_fixed_source_of_itself(volume: ConfigMapVolume) -> None:
    policy = LivePolicy(volume.path, interval=0)()
    assert policy() is policy
