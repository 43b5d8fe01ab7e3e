"""Identifiers: time-ordered, so ids sort roughly by creation and index well in ClickHouse."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """32 hex chars: 48 bits of milliseconds, then 80 random bits (UUIDv7-like layout)."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"
