"""Durations, rates and sizes as written in postline.yaml."""

from __future__ import annotations

from datetime import timedelta

import pytest

from postline.common.policy.units import (
    Rate,
    format_duration,
    parse_duration,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("4h", timedelta(hours=4)),
        ("1d", timedelta(days=1)),
        ("24h", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5s", timedelta(seconds=1.5)),
        ("0s", timedelta(0)),
        ("0", timedelta(0)),
        (0, timedelta(0)),
        (" 30s ", timedelta(seconds=30)),
    ],
)
def test_parse_duration(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "30", 30, 1.5, True, None, "10 minutes", "s", "-5s", "5x", "1h-30m", "m10"]
)
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_bare_number_duration_asks_for_a_unit() -> None:
    with pytest.raises(ValueError, match="needs a unit"):
        parse_duration(30)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=1, seconds=1), "1d1s"),
    ],
)
def test_format_duration_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    ("text", "count", "per"),
    [
        ("600/min", 600, 60),
        ("10/s", 10, 1),
        ("20000/h", 20000, 3600),
        ("5/d", 5, 86400),
        ("100/second", 100, 1),
        ("3/minute", 3, 60),
        ("5/10s", 5, 10),
        ("1 / hour", 1, 3600),
    ],
)
def test_parse_rate(text: str, count: int, per: float) -> None:
    assert parse_rate(text) == Rate(count, per)


@pytest.mark.parametrize(
    "text", ["600", "600/", "/min", "0/s", "10/fortnight", "-1/s", "1.5/s", 10, None, "10/0s"]
)
def test_parse_rate_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate(text)


def test_rate_properties() -> None:
    rate = parse_rate("600/min")
    assert rate.per_second == 10
    assert rate.spacing == pytest.approx(0.1)
    assert rate.interval == timedelta(milliseconds=100)
    assert str(rate) == "600/min"
    assert str(parse_rate("5/10s")) == "5/10s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (1000, 1000),
        (0, 0),
        ("1000", 1000),
        ("512KiB", 512 * 1024),
        ("10MiB", 10 * 1024 * 1024),
        ("1GiB", 1024**3),
        ("10MB", 10_000_000),
        ("1kb", 1000),
        ("1.5KiB", 1536),
        ("100B", 100),
        ("10 MiB", 10 * 1024 * 1024),
    ],
)
def test_parse_size(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MiB", "10 parsecs", "-1", -1, True, "1.3B", None, 1.5])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)
