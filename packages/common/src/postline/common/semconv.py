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
BATCH_SIZE = "postline.batch_size"  # events in one reports ingest batch
SPEED_KEY = "postline.speed_key"
PRIORITY = "postline.priority"
SOURCE_IP = "postline.source_ip"
TLS = "postline.tls"
CONNECTION_REUSED = "postline.connection_reused"
MX_ADDRESS = "postline.mx_address"
DNS_MS = "postline.dns_ms"
TLS_VERSION = "postline.tls_version"
TLS_CIPHER = "postline.tls_cipher"
TLS_VERIFIED = "postline.tls_verified"
STAGE = "postline.stage"  # the SMTP step that answered: connect, ehlo, starttls, mail, rcpt...
REPLY_TEXT = "postline.reply_text"
# On the link from a span that resumes a delivery to the span that made it wait.
WAIT = "postline.wait"  # retry, prohibited_hours, paused, backlog
WAIT_UNTIL = "postline.wait_until"  # epoch seconds the wait was to end

# Span names.
SPAN_SMTP_TRANSACTION = "postline.ingress.smtp_transaction"
SPAN_API_SEND = "postline.ingress.api_send"
SPAN_SCHEDULE = "postline.scheduler.schedule"
SPAN_RESULT = "postline.scheduler.result"
SPAN_GRANT = "postline.scheduler.grant"  # a delivery's turn after waiting in its backlog
SPAN_NOTICE = "postline.scheduler.notice"  # a notice's own trace, linked to the delivery's
SPAN_ATTEMPT = "postline.sender.attempt"
SPAN_CLASSIFY = "postline.bounce.classify"
SPAN_BOUNCE_MAIL = "postline.bounce.mail"
SPAN_INBOUND_MAIL = "postline.bounce.inbound_mail"
SPAN_WEBHOOK_POST = "postline.reports.webhook_post"
SPAN_WEEKLY_SUMMARY = "postline.reports.weekly_summary"
SPAN_INGEST = "postline.reports.ingest"
SPAN_REPORT_INSERT = "postline.reports.insert"  # in each event's own trace

# Span events (a sender attempt's steps, at the moments they ended).
EVENT_MX_LOOKUP = "postline.mx_lookup"
EVENT_CONNECTED = "postline.connected"
EVENT_REPLY = "postline.reply"

# Metric names (Prometheus).
METRIC_ACCEPTED = "postline_ingress_accepted_deliveries_total"
METRIC_REJECTED = "postline_ingress_rejected_total"
METRIC_SCHEDULED = "postline_scheduler_tasks_total"
METRIC_DECISIONS = "postline_scheduler_decisions_total"
METRIC_SCHEDULER_IN_FLIGHT = "postline_scheduler_in_flight"
METRIC_BACKLOG_QUEUES = "postline_scheduler_backlog_queues"
METRIC_OWNED_SHARDS = "postline_scheduler_owned_shards"
METRIC_SUPPRESSION_LIST_LOADED = "postline_scheduler_suppression_list_loaded"
METRIC_SUPPRESSIONS = "postline_scheduler_suppressions"
METRIC_NOTICES = "postline_scheduler_notices_total"
METRIC_ATTEMPTS = "postline_sender_attempts_total"
METRIC_ATTEMPT_SECONDS = "postline_sender_attempt_seconds"
METRIC_SMTP_SESSIONS = "postline_sender_smtp_sessions_total"
METRIC_IN_FLIGHT = "postline_sender_in_flight"
METRIC_CLASSIFIED = "postline_bounce_classified_total"
METRIC_INGESTED = "postline_reports_ingested_events_total"
METRIC_INGEST_BATCH_EVENTS = "postline_reports_ingest_batch_events"
METRIC_INGEST_SECONDS = "postline_reports_ingest_write_seconds"
METRIC_INGEST_FAILURES = "postline_reports_ingest_write_failures_total"
METRIC_BROKEN_PARTS = "postline_reports_broken_parts_detached_total"
METRIC_SPANS_RECEIVED = "postline_reports_spans_written_total"
METRIC_SPANS_WRITE_FAILURES = "postline_reports_span_write_failures_total"
METRIC_BOUNCE_MAILS = "postline_bounce_mails_received_total"
# Every service: the policy file (postline.common.policy.reload).
METRIC_POLICY_INFO = "postline_policy_info"
METRIC_POLICY_RELOADS = "postline_policy_reloads_total"
METRIC_POLICY_FILE_VALID = "postline_policy_file_valid"
METRIC_WEBHOOK_ATTEMPTS = "postline_reports_webhook_attempts_total"
METRIC_WEBHOOK_EVENTS = "postline_reports_webhook_events_total"
METRIC_WEBHOOK_SECONDS = "postline_reports_webhook_post_seconds"
METRIC_WEBHOOK_FANOUT = "postline_reports_webhook_fanout_events_total"
METRIC_WEEKLY_SUMMARIES = "postline_reports_weekly_summaries_total"
# Every service: broker messages it published and received, by protobuf type (a batch counts
# once; its items count in the _items_ metric).
METRIC_BROKER_PUBLISHED = "postline_broker_published_messages_total"
METRIC_BROKER_RECEIVED = "postline_broker_received_messages_total"
METRIC_BROKER_RECEIVED_ITEMS = "postline_broker_received_items_total"
