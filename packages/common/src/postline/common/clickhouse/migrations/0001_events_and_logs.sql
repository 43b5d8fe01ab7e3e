-- Raw delivery events, the delivery log (latest state per delivery) and the error log.
-- Event rows carry their event_id: a re-delivered event merges away (at-least-once is harmless).

CREATE TABLE IF NOT EXISTS postline.delivery_events
(
    event_id String,
    delivery_id String,
    message_id String,
    status LowCardinality(String),
    at DateTime64(3, 'UTC'),
    accepted_at DateTime64(3, 'UTC'),
    server LowCardinality(String),
    api_user LowCardinality(String),
    envelope_from String,
    recipient String,
    recipient_domain LowCardinality(String),
    subject String,
    api_data String,
    return_path String,
    header_message_id String,
    attempt UInt16,
    reply_code UInt16,
    enhanced_status LowCardinality(String),
    reason String,
    mx_host LowCardinality(String),
    source_ip LowCardinality(String),
    error_status UInt16,
    next_attempt_at Nullable(DateTime64(3, 'UTC')),
    trace_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (toDate(at), delivery_id, event_id)
TTL toDateTime(at) + INTERVAL {retention_days} DAY;

-- Latest state per delivery: the row with the highest version wins on merge (and with FINAL).
-- The version orders by time, then by status rank so a final state beats a queued one
-- recorded in the same millisecond.
CREATE TABLE IF NOT EXISTS postline.delivery_log
(
    delivery_id String,
    message_id String,
    created DateTime64(3, 'UTC'),
    updated DateTime64(3, 'UTC'),
    status LowCardinality(String),
    server LowCardinality(String),
    api_user LowCardinality(String),
    envelope_from String,
    recipient String,
    recipient_domain LowCardinality(String),
    subject String,
    api_data String,
    return_path String,
    header_message_id String,
    attempt UInt16,
    reply_code UInt16,
    enhanced_status LowCardinality(String),
    reason String,
    mx_host LowCardinality(String),
    error_status UInt16,
    trace_id String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created)
ORDER BY (toDate(created), delivery_id)
TTL toDateTime(created) + INTERVAL {retention_days} DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS postline.delivery_log_mv TO postline.delivery_log AS
SELECT
    delivery_id,
    message_id,
    accepted_at AS created,
    at AS updated,
    status,
    server,
    api_user,
    envelope_from,
    recipient,
    recipient_domain,
    subject,
    api_data,
    return_path,
    header_message_id,
    attempt,
    reply_code,
    enhanced_status,
    reason,
    mx_host,
    error_status,
    trace_id,
    toUInt64(toUnixTimestamp64Milli(at)) * 10
        + multiIf(status = 'queued', 1, status = 'deferred', 2, 3) AS version
FROM postline.delivery_events;

CREATE TABLE IF NOT EXISTS postline.error_log
(
    event_id String,
    delivery_id String,
    message_id String,
    created DateTime64(3, 'UTC'),
    status UInt16,
    envelope_from String,
    recipient String,
    header_message_id String,
    return_path String,
    subject String,
    api_data String,
    reason String,
    source LowCardinality(String),
    permanent Bool,
    reply_code UInt16,
    enhanced_status LowCardinality(String),
    server LowCardinality(String),
    api_user LowCardinality(String),
    trace_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created)
ORDER BY (toDate(created), event_id)
TTL toDateTime(created) + INTERVAL {retention_days} DAY;
