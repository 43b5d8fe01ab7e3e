"""Every POST to a webhook endpoint, visible: ClickHouse rows (``webhook_attempts``, what the
reports API's ``/api/v1/webhooks/attempts`` answers) and Prometheus metrics per endpoint and
outcome.

Rows are written in small batches off the POSTing path: a ClickHouse outage never holds a
webhook back. Rows that cannot be written are kept (up to ``MAX_BUFFERED``) and written when
ClickHouse is back; beyond that the oldest are dropped with a warning (the metrics still
count them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from prometheus_client import Counter, Histogram

from postline.common.runtime import within
from postline.common.semconv import (
    METRIC_WEBHOOK_ATTEMPTS,
    METRIC_WEBHOOK_EVENTS,
    METRIC_WEBHOOK_SECONDS,
)
from postline.common.webhooks import Endpoint, EndpointKind
from postline.reports.store import Store

logger = logging.getLogger(__name__)

ATTEMPTS = Counter(METRIC_WEBHOOK_ATTEMPTS, "POSTs to webhook endpoints", ["endpoint", "outcome"])
EVENTS = Counter(
    METRIC_WEBHOOK_EVENTS,
    "events (or inbound mails) delivered to webhook endpoints, or given up",
    ["endpoint", "result"],
)
POST_SECONDS = Histogram(METRIC_WEBHOOK_SECONDS, "seconds a webhook POST took", ["endpoint"])

TABLE = "postline.webhook_attempts"
COLUMNS = (
    "at",
    "endpoint_id",
    "endpoint",
    "kind",
    "server",
    "owner",
    "webhook_id",
    "attempt",
    "events",
    "event_types",
    "outcome",
    "status_code",
    "duration_ms",
    "error",
    "next_attempt_at",
)
MAX_BUFFERED = 10_000
FLUSH_SECONDS = 1.0


class PostOutcome(StrEnum):
    """What one POST to a webhook endpoint came to."""

    DELIVERED = "delivered"  # a 2xx answer
    REJECTED = "rejected"  # any other answer (kept for a retry)
    TIMEOUT = "timeout"  # no answer in time
    UNREACHABLE = "unreachable"  # no connection (refused, DNS, TLS...)
    EXPIRED = "expired"  # retried for the whole retry period: given up (dead-lettered)


@dataclass(frozen=True)
class Attempt:
    endpoint: Endpoint
    at: float
    webhook_id: str
    attempt: int
    event_types: tuple[str, ...]
    outcome: PostOutcome
    status_code: int = 0
    seconds: float = 0.0
    error: str = ""
    next_attempt_at: float | None = None

    def row(self) -> list[object]:
        endpoint = self.endpoint
        return [
            datetime.fromtimestamp(self.at, UTC),
            endpoint.id,
            endpoint.label,
            str(endpoint.kind),
            endpoint.owner if endpoint.kind is EndpointKind.EVENTS else "",
            endpoint.owner,
            self.webhook_id,
            self.attempt,
            len(self.event_types),
            sorted(set(self.event_types)),
            str(self.outcome),
            self.status_code,
            int(self.seconds * 1000),
            self.error[:500],
            (
                datetime.fromtimestamp(self.next_attempt_at, UTC)
                if self.next_attempt_at is not None
                else None
            ),
        ]


class AttemptLog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._rows: deque[list[object]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def record(self, attempt: Attempt) -> None:
        label = attempt.endpoint.label
        if attempt.outcome is not PostOutcome.EXPIRED:
            ATTEMPTS.labels(label, str(attempt.outcome)).inc()
            POST_SECONDS.labels(label).observe(attempt.seconds)
        if attempt.outcome is PostOutcome.DELIVERED:
            EVENTS.labels(label, "delivered").inc(len(attempt.event_types))
        elif attempt.outcome is PostOutcome.EXPIRED:
            EVENTS.labels(label, "expired").inc(len(attempt.event_types))
        if len(self._rows) >= MAX_BUFFERED:
            self._rows.popleft()
            logger.warning("webhook attempt rows: ClickHouse behind, oldest row dropped")
        self._rows.append(attempt.row())
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-attempt-log")

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    async def flush(self) -> bool:
        """Write what is buffered; False if ClickHouse refused (the rows are kept)."""
        if not self._rows:
            return True
        rows = list(self._rows)
        try:
            await self.store.write(lambda c: c.insert(TABLE, rows, column_names=COLUMNS))
        except Exception as exc:
            logger.warning("webhook attempt rows not written (%d kept): %r", len(rows), exc)
            return False
        for _ in rows:
            self._rows.popleft()
        return True

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            written = await self.flush()
            # Gather a second's rows per insert (a backoff too while ClickHouse is away).
            with contextlib.suppress(TimeoutError):
                await within(self._stop.wait(), FLUSH_SECONDS if written else 5.0)
            if self._rows:
                self._wake.set()
        await self.flush()
