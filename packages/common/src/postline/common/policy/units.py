"""Durations, rates and sizes as users write them in postline.yaml.

Durations: ``500ms``, ``30s``, ``10m``, ``4h``, ``1d`` (parts may be combined: ``1h30m``).
Rates: ``600/min``, ``10/s``, ``20000/h`` (or over a duration: ``5/10s``).
Sizes: ``10MiB``, ``512KiB``, ``1000`` (bytes); ``KB``/``MB``/``GB`` are decimal.

A bare number is refused as a duration (is ``30`` seconds or minutes?) except ``0``, which is
unambiguous. Parsers raise ``ValueError`` with a message meant for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")

# Units after the slash of a rate; the long spellings are accepted because people write them.
_RATE_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"(\d+)\s*/\s*(\S+)")

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)")


def parse_duration(value: object) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 30s, 10m, 4h, 1d")
    if isinstance(value, int | float) and value == 0:
        return timedelta(0)
    if not isinstance(value, str):
        raise ValueError(
            f"invalid duration {value!r}: a duration needs a unit, e.g. 500ms, 30s, 10m, 4h, 1d"
        )
    text = value.strip().replace(" ", "")
    if text == "0":
        return timedelta(0)
    if not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 30s, 10m, 4h, 1d")
    seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """A spelling ``parse_duration`` reads back: ``timedelta(minutes=90)`` -> ``1h30m``."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        parts.append(f"{ms}ms")
    return sign + "".join(parts)


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` events per ``per`` seconds."""

    count: int
    per: float

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"invalid rate {self}: the count must be at least 1")
        if self.per <= 0:
            raise ValueError(f"invalid rate {self}: the period must be positive")

    @property
    def per_second(self) -> float:
        return self.count / self.per

    @property
    def spacing(self) -> float:
        """Seconds between two events at this rate, evenly spaced (``600/min``: 0.1)."""
        return self.per / self.count

    @property
    def interval(self) -> timedelta:
        """:attr:`spacing` as a duration."""
        return timedelta(seconds=self.spacing)

    def __str__(self) -> str:
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
            if self.per == size:
                return f"{self.count}/{unit}"
        return f"{self.count}/{format_duration(timedelta(seconds=self.per))}"


def parse_rate(value: object) -> Rate:
    """``"600/min"`` -> ``Rate(count=600, per=60)``."""
    if isinstance(value, Rate):
        return value
    hint = "expected e.g. 600/min, 10/s, 20000/h"
    if not isinstance(value, str):
        raise ValueError(f"invalid rate {value!r}: {hint}")
    match = _RATE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"invalid rate {value!r}: {hint}")
    count, unit = int(match.group(1)), match.group(2)
    if unit in _RATE_UNITS:
        per = _RATE_UNITS[unit]
    else:
        try:
            per = parse_duration(unit).total_seconds()
        except ValueError:
            raise ValueError(f"invalid rate {value!r}: unknown unit {unit!r}; {hint}") from None
    if count < 1 or per <= 0:
        raise ValueError(f"invalid rate {value!r}: count and period must be positive")
    return Rate(count, per)


def parse_size(value: object) -> int:
    """``"10MiB"`` -> ``10485760``; a bare integer is bytes."""
    hint = "expected bytes or e.g. 512KiB, 10MiB, 1GiB"
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: {hint}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid size {value!r}: {hint}")
    match = _SIZE.fullmatch(value.strip())
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"invalid size {value!r}: {hint}")
    number, unit = match.group(1), match.group(2).lower()
    size = float(number) * _SIZE_UNITS[unit]
    if size != int(size):
        raise ValueError(f"invalid size {value!r}: not a whole number of bytes")
    return int(size)
