"""The scheduler's copy of the suppression list: changes, expiry, and changes that arrive
while the initial list is read."""

from __future__ import annotations

from postline.common.timeutil import to_timestamp
from postline.scheduler.suppressions import SuppressionList
from postline.v1 import events_pb2, suppression_pb2

T0 = 1_800_000_000.0


class Clock:
    now = T0

    def __call__(self) -> float:
        return self.now


def _change(
    address: str, action: events_pb2.SuppressionAction.ValueType, expires: float | None = None
) -> events_pb2.SuppressionChange:
    change = events_pb2.SuppressionChange(server="default", address=address, action=action)
    if expires is not None:
        change.expires_at.CopyFrom(to_timestamp(expires))
    return change


def test_changes_add_and_remove_case_insensitively() -> None:
    suppressions = SuppressionList(Clock())
    suppressions.apply(_change("Gone@Example.test", events_pb2.SUPPRESSION_ACTION_ADD))
    assert suppressions.is_suppressed("default", "gone@example.TEST")
    assert not suppressions.is_suppressed("other", "gone@example.test")  # per server
    suppressions.apply(_change("gone@example.test", events_pb2.SUPPRESSION_ACTION_REMOVE))
    assert not suppressions.is_suppressed("default", "gone@example.test")


def test_an_address_is_one_key_however_it_is_written() -> None:
    """The scheduler and bounce key addresses alike (``common.addresses.address_key``): a
    bounce mail's bare ``a..b@x`` and the delivery's quoted ``"a..b"@x`` are one address."""
    suppressions = SuppressionList(Clock())
    suppressions.apply(
        _change("<Irregular..Pattern@Example.test>", events_pb2.SUPPRESSION_ACTION_ADD)
    )
    assert suppressions.is_suppressed("default", '"irregular..pattern"@example.test')
    assert suppressions.is_suppressed("default", " irregular..pattern@EXAMPLE.test ")
    assert not suppressions.is_suppressed("default", "irregular.pattern@example.test")


def test_a_suppression_expires() -> None:
    clock = Clock()
    suppressions = SuppressionList(clock)
    suppressions.apply(_change("a@x.test", events_pb2.SUPPRESSION_ACTION_ADD, expires=T0 + 60))
    assert suppressions.is_suppressed("default", "a@x.test")
    clock.now = T0 + 61
    assert not suppressions.is_suppressed("default", "a@x.test")


def test_changes_during_the_initial_load_win_over_the_listing() -> None:
    suppressions = SuppressionList(Clock())
    suppressions.begin_load()
    # Removed while the (older) listing was on its way, which still has it.
    suppressions.apply(_change("a@x.test", events_pb2.SUPPRESSION_ACTION_REMOVE))
    suppressions.apply(_change("b@x.test", events_pb2.SUPPRESSION_ACTION_ADD))
    assert not suppressions.loaded
    listing = [
        suppression_pb2.Suppression(server="default", address="a@x.test"),
        suppression_pb2.Suppression(server="default", address="c@x.test"),
    ]
    suppressions.finish_load(listing)
    assert suppressions.loaded
    assert not suppressions.is_suppressed("default", "a@x.test")
    assert suppressions.is_suppressed("default", "b@x.test")
    assert suppressions.is_suppressed("default", "c@x.test")
