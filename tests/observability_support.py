"""What the observability tests share: the broker metrics the dashboards and rules may use
besides Postline's own (checked against the files in the unit tests, against a real RabbitMQ
in the integration tests)."""

from __future__ import annotations

# RabbitMQ's Prometheus plugin, per-object metrics (labels vhost, queue), as a real broker
# serves them on /metrics/per-object.
RABBITMQ_METRICS = {
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
}
