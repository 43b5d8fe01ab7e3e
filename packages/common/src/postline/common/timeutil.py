"""Time as Postline passes it around: epoch seconds inside, protobuf Timestamps on the wire."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def now() -> float:
    return time.time()


def to_timestamp(epoch: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(epoch * 1e9))
    return ts


def from_timestamp(ts: Timestamp) -> float:
    return ts.ToNanoseconds() / 1e9


def to_datetime(ts: Timestamp) -> datetime:
    """UTC-aware datetime (unset Timestamp = the epoch)."""
    return datetime.fromtimestamp(from_timestamp(ts), tz=UTC)
