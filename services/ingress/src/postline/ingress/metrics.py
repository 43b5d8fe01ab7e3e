"""The ingress service's Prometheus metrics (names in ``postline.common.semconv``)."""

from __future__ import annotations

from prometheus_client import Counter

from postline.common.semconv import METRIC_ACCEPTED, METRIC_REJECTED

SMTP = "smtp"
API = "api"  # the send API, over HTTP and gRPC alike

ACCEPTED = Counter(
    METRIC_ACCEPTED,
    "deliveries accepted (each recipient of a message, once RabbitMQ confirmed it)",
    ["interface"],
)
REJECTED = Counter(
    METRIC_REJECTED,
    "refusals by reply code: the SMTP reply code (4xx, 5xx), or the send API's HTTP status "
    "(gRPC answers count under the HTTP status they stand for)",
    ["interface", "code"],
)
