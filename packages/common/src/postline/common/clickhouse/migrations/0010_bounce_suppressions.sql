-- The bounce service's own tables (in its own ClickHouse data path; migrations apply to every
-- DSN alike, so they exist, unused, in the others too).
--
-- suppressions: the delivery-blocking list, one row per change. The latest row of a
-- (server, address) wins (version = change time in microseconds); a removal is a row with
-- removed = 1, so every change is kept until merged and listing uses FINAL. Addresses are
-- lowercased (comparison is case-insensitive). No TTL: a suppression lasts until removed or
-- until its own expires_at (the policy's blocking.expire_after), which queries check.

CREATE TABLE IF NOT EXISTS postline.suppressions
(
    server LowCardinality(String),
    address String,
    reason String,
    delivery_id String,
    created DateTime64(3, 'UTC'),
    expires_at Nullable(DateTime64(3, 'UTC')),
    removed UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (server, address);

-- bounce_deliveries: what the error log needs of each delivery (sender, recipient, subject,
-- api data, server...), recorded from its `queued` event, so a bounce mail that arrives days
-- later (a VERP address names only the delivery id) becomes a complete error-log row.

CREATE TABLE IF NOT EXISTS postline.bounce_deliveries
(
    delivery_id String,
    message_id String,
    header_message_id String,
    server LowCardinality(String),
    api_user LowCardinality(String),
    envelope_from String,
    recipient String,
    subject String,
    api_data String,
    accepted_at DateTime64(3, 'UTC'),
    trace_id String,
    INDEX header_message_id_bf header_message_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(accepted_at)
ORDER BY delivery_id
TTL toDateTime(accepted_at) + INTERVAL {retention_days} DAY;

-- complaints: ARF feedback reports (and providers' own complaint formats) received on a
-- return-path address. A complaint is no delivery failure, so it is not an error-log row.

CREATE TABLE IF NOT EXISTS postline.complaints
(
    received DateTime64(3, 'UTC'),
    feedback_type LowCardinality(String),
    recipient String,
    delivery_id String,
    server LowCardinality(String),
    header_message_id String,
    subject String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received)
ORDER BY (received, recipient)
TTL toDateTime(received) + INTERVAL {retention_days} DAY;
