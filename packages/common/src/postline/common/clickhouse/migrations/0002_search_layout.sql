-- The delivery log and the error log laid out for the reports API's searches.
--
-- 0001 sorted both logs by (day, id), so "the newest 100 rows" meant reading and sorting whole
-- days. Sorted by (created, id), ClickHouse reads backwards and stops after the page: a
-- delivery's created (when ingress accepted it) and an error row's created never change, so
-- the deduplication key is still one row per delivery / per event.
--
-- The delivery log's version now ranks the status first, then the time: a final state
-- (succeeded, failed) beats a deferral, which beats queued, whatever the clocks of the hosts
-- that emitted them say. So a row with a final status is always the latest state of its
-- delivery, which lets a status search filter before FINAL (see services/reports search.py).
--
-- recipient_ngrams serves the partial, case-insensitive address search: granules whose
-- recipients cannot contain the searched text are skipped.
--
-- The reports service is stopped while migrations run (it refuses to start on a schema that
-- is behind), so nothing writes to the old tables between the copy and the swap.
-- Each statement is recorded when it succeeds; a failed run resumes at the failed one.

DROP VIEW IF EXISTS postline.delivery_log_mv;

RENAME TABLE postline.delivery_log TO postline.delivery_log_0001;

CREATE TABLE postline.delivery_log
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
    version UInt64,
    INDEX recipient_ngrams lowerUTF8(recipient) TYPE ngrambf_v1(3, 32768, 2, 0) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created)
ORDER BY (created, delivery_id)
TTL toDateTime(created) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

INSERT INTO postline.delivery_log
SELECT
    * EXCEPT version,
    multiIf(status = 'queued', 1, status = 'deferred', 2, 3) * 10000000000000
        + intDiv(version, 10) AS version
FROM postline.delivery_log_0001;

DROP TABLE postline.delivery_log_0001;

CREATE MATERIALIZED VIEW postline.delivery_log_mv TO postline.delivery_log AS
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
    multiIf(status = 'queued', 1, status = 'deferred', 2, 3) * 10000000000000
        + toUInt64(toUnixTimestamp64Milli(at)) AS version
FROM postline.delivery_events;

RENAME TABLE postline.error_log TO postline.error_log_0001;

-- recipient_domain (lowercased, after the last @) feeds the per-domain error graph.
CREATE TABLE postline.error_log
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
    trace_id String,
    recipient_domain LowCardinality(String)
        DEFAULT lowerUTF8(arrayElement(splitByChar('@', recipient), -1)),
    INDEX recipient_ngrams lowerUTF8(recipient) TYPE ngrambf_v1(3, 32768, 2, 0) GRANULARITY 1,
    INDEX delivery delivery_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created)
ORDER BY (created, event_id)
TTL toDateTime(created) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

INSERT INTO postline.error_log (* EXCEPT recipient_domain)
SELECT * FROM postline.error_log_0001;

DROP TABLE postline.error_log_0001;

-- Raw events: a retried batch with the same deduplication token is written once.
ALTER TABLE postline.delivery_events MODIFY SETTING non_replicated_deduplication_window = 1000;
