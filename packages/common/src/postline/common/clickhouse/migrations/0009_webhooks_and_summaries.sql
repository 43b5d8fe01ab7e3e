-- The reports service's record of what it told the sender (its own ClickHouse).
--
-- webhook_attempts: one row per POST to a webhook endpoint (events or inbound mail), and one
-- when a batch is given up (outcome 'expired'). `server` is the endpoint's server ('' for an
-- inbound endpoint, whose owner is its domain). What the reports API's
-- /api/v1/webhooks/attempts answers.

CREATE TABLE IF NOT EXISTS postline.webhook_attempts
(
    at DateTime64(3, 'UTC'),
    endpoint_id String,
    endpoint LowCardinality(String),
    kind LowCardinality(String),
    server LowCardinality(String),
    owner LowCardinality(String),
    webhook_id String,
    attempt UInt16,
    events UInt32,
    event_types Array(LowCardinality(String)),
    outcome LowCardinality(String),
    status_code UInt16,
    duration_ms UInt32,
    error String,
    next_attempt_at Nullable(DateTime64(3, 'UTC'))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (server, at, webhook_id)
TTL toDateTime(at) + INTERVAL {retention_days} DAY;

-- weekly_summaries: the summaries sent, one row per server and scheduled time, so a summary
-- goes once a week across restarts (checked before sending, written once it was published).

CREATE TABLE IF NOT EXISTS postline.weekly_summaries
(
    server LowCardinality(String),
    due DateTime('UTC'),
    sent_at DateTime64(3, 'UTC'),
    message_id String,
    recipients Array(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (server, due)
TTL due + INTERVAL {retention_days} DAY;
