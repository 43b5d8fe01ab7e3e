"""When a temporary failure asks to be retried later ("try again in 5 minutes").

The patterns are data (``rules/retry_after.yaml``); this module only reads them and turns a
match into seconds. A reply without such a hint gives None: the retry interval applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

_WAIT = r"(?P<n>\d{1,6})\s*(?P<unit>seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b"
_UNITS = {"s": 1, "m": 60, "h": 3600}
# A reply asking for more than a day is treated as a day: the resend period decides the rest.
MAX_SECONDS = 86400.0


@dataclass(frozen=True)
class RetryAfterRule:
    name: str
    pattern: re.Pattern[str]
    sample: str
    seconds: float


@cache
def rules() -> tuple[RetryAfterRule, ...]:
    text = resources.files("postline.scheduler.rules").joinpath("retry_after.yaml").read_text()
    raw = yaml.safe_load(text)
    return tuple(
        RetryAfterRule(
            name=item["name"],
            pattern=re.compile(item["pattern"].replace("{wait}", _WAIT), re.IGNORECASE),
            sample=item["sample"],
            seconds=float(item["seconds"]),
        )
        for item in raw["patterns"]
    )


def retry_after(reply_text: str) -> float | None:
    """Seconds the reply asks to wait before the next attempt, or None."""
    for rule in rules():
        match = rule.pattern.search(reply_text)
        if match:
            unit = match["unit"].lower()
            # "m"/"min"/"minute(s)" are minutes; "ms" cannot match (the \b after the unit).
            seconds = int(match["n"]) * _UNITS[unit[0]]
            return min(float(seconds), MAX_SECONDS)
    return None
