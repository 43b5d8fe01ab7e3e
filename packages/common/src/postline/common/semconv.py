"""Every span name, span attribute and metric name Postline emits, in one place."""

from __future__ import annotations

# Span attributes (namespaced, so they never collide with OpenTelemetry's own).
MESSAGE_ID = "postline.message_id"
DELIVERY_ID = "postline.delivery_id"
RECIPIENT_DOMAIN = "postline.recipient_domain"
SERVER = "postline.server"
API_USER = "postline.api_user"
ATTEMPT = "postline.attempt"
OUTCOME = "postline.outcome"
REPLY_CODE = "postline.reply_code"
ENHANCED_STATUS = "postline.enhanced_status"
ERROR_STATUS = "postline.error_status"
SHARD = "postline.shard"
MX_HOST = "postline.mx_host"

# Span names.
SPAN_SMTP_TRANSACTION = "postline.ingress.smtp_transaction"
SPAN_API_SEND = "postline.ingress.api_send"
SPAN_SCHEDULE = "postline.scheduler.schedule"
SPAN_RESULT = "postline.scheduler.result"
SPAN_ATTEMPT = "postline.sender.attempt"
SPAN_CLASSIFY = "postline.bounce.classify"
SPAN_INGEST = "postline.reports.ingest"

# Metric names (Prometheus).
METRIC_ACCEPTED = "postline_ingress_accepted_deliveries_total"
METRIC_REJECTED = "postline_ingress_rejected_total"
METRIC_SCHEDULED = "postline_scheduler_tasks_total"
METRIC_ATTEMPTS = "postline_sender_attempts_total"
METRIC_CLASSIFIED = "postline_bounce_classified_total"
METRIC_INGESTED = "postline_reports_ingested_events_total"
