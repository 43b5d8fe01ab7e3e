"""The attempts this owner sent, to drop a second copy of one.

At-least-once delivery can bring a second copy of a delivery (a crash after it was queued,
before its input was acked): a copy of an attempt this owner itself sent is dropped. Attempts
a previous owner leased are sent again (its lease cannot tell whether the task went out):
duplicates there are the price of losing nothing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from postline.scheduler import metrics
from postline.v1 import delivery_pb2

logger = logging.getLogger(__name__)

# Attempts remembered (the oldest are forgotten first).
SENT_MEMORY = 200_000


class SentAttempts:
    def __init__(self, memory: int = SENT_MEMORY) -> None:
        self.memory = memory
        self._sent: OrderedDict[tuple[str, int], float] = OrderedDict()  # -> when

    def add(self, task: delivery_pb2.DeliveryTask, now: float) -> None:
        self._sent[(task.delivery.delivery_id, task.attempt)] = now
        if len(self._sent) > self.memory:
            self._sent.popitem(last=False)

    def seen(self, task: delivery_pb2.DeliveryTask) -> bool:
        """Whether this owner sent that attempt already (counted and logged as a duplicate)."""
        if (task.delivery.delivery_id, task.attempt) not in self._sent:
            return False
        logger.info(
            "%s attempt %d: a second copy, already sent by this owner; dropped",
            task.delivery.delivery_id,
            task.attempt,
        )
        metrics.decided("duplicate").inc()
        return True

    def forget_before(self, before: float) -> None:
        while self._sent and next(iter(self._sent.values())) < before:
            self._sent.popitem(last=False)
