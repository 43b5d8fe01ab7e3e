"""The scheduler's Prometheus metrics (names in postline.common.semconv)."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge

from postline.common.semconv import (
    METRIC_BACKLOG_QUEUES,
    METRIC_DECISIONS,
    METRIC_NOTICES,
    METRIC_OWNED_SHARDS,
    METRIC_SCHEDULED,
    METRIC_SCHEDULER_IN_FLIGHT,
    METRIC_SUPPRESSION_LIST_LOADED,
    METRIC_SUPPRESSIONS,
)

TASKS = Counter(METRIC_SCHEDULED, "delivery tasks handed to the senders", ["attempt"])
DECISIONS = Counter(
    METRIC_DECISIONS,
    "policy decisions (granted, backlogged, held, paused, suppressed, forwarded, retry, "
    "expired, succeeded, failed)",
    ["decision"],
)
IN_FLIGHT = Gauge(METRIC_SCHEDULER_IN_FLIGHT, "speed grants whose result has not come back")
BACKLOG_QUEUES = Gauge(METRIC_BACKLOG_QUEUES, "speed keys with a backlog queue")
OWNED_SHARDS = Gauge(METRIC_OWNED_SHARDS, "scheduler shards this replica owns")
SUPPRESSION_LIST_LOADED = Gauge(
    METRIC_SUPPRESSION_LIST_LOADED, "1 once the initial suppression list was read from bounce"
)
SUPPRESSIONS = Gauge(METRIC_SUPPRESSIONS, "entries in this replica's suppression list copy")
NOTICES = Counter(
    METRIC_NOTICES, "delivery status notifications sent (delayed, failed, delivered)", ["action"]
)


@functools.cache
def decided(decision: str) -> Counter:
    """The ``DECISIONS`` counter of one decision, looked up once (deliveries count one or
    two decisions each)."""
    return DECISIONS.labels(decision=decision)


@functools.cache
def scheduled(attempt: str) -> Counter:
    """The ``TASKS`` counter of first attempts or of retries, looked up once (one a grant)."""
    return TASKS.labels(attempt=attempt)
