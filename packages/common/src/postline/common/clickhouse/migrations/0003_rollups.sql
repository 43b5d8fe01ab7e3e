-- Rollups for the statistics API: hourly counts by server and API user, and by destination
-- domain, MX host, sender address, SMTP reply and error status. Materialized views fill them
-- on every insert, so a statistic reads thousands of summed rows instead of millions of events.
--
-- Buckets are UTC hours: days, months, weekdays and hours of the day are sums of them, exact
-- in any time zone whose offset is a whole number of hours.
--
-- Counts are events: queued = accepted deliveries, deferred = deferrals (a delivery deferred
-- twice counts twice), succeeded, failed. A retried batch carries the same deduplication
-- token, and each rollup keeps a deduplication window, so a retried insert is counted once.
--
-- Each rollup is backfilled from the events already stored (the reports service is stopped
-- while migrations run, so no event is counted twice).

CREATE TABLE IF NOT EXISTS postline.stats_hourly
(
    server LowCardinality(String),
    api_user LowCardinality(String),
    hour DateTime('UTC'),
    queued UInt64,
    deferred UInt64,
    succeeded UInt64,
    failed UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (server, api_user, hour)
TTL hour + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS postline.stats_hourly_mv TO postline.stats_hourly AS
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    countIf(status = 'queued') AS queued,
    countIf(status = 'deferred') AS deferred,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'failed') AS failed
FROM postline.delivery_events
GROUP BY server, api_user, hour;

INSERT INTO postline.stats_hourly
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    countIf(status = 'queued') AS queued,
    countIf(status = 'deferred') AS deferred,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'failed') AS failed
FROM postline.delivery_events FINAL
GROUP BY server, api_user, hour;

CREATE TABLE IF NOT EXISTS postline.stats_domains_hourly
(
    server LowCardinality(String),
    api_user LowCardinality(String),
    hour DateTime('UTC'),
    recipient_domain LowCardinality(String),
    queued UInt64,
    deferred UInt64,
    succeeded UInt64,
    failed UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (server, api_user, hour, recipient_domain)
TTL hour + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS postline.stats_domains_hourly_mv
TO postline.stats_domains_hourly AS
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    recipient_domain,
    countIf(status = 'queued') AS queued,
    countIf(status = 'deferred') AS deferred,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'failed') AS failed
FROM postline.delivery_events
GROUP BY server, api_user, hour, recipient_domain;

INSERT INTO postline.stats_domains_hourly
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    recipient_domain,
    countIf(status = 'queued') AS queued,
    countIf(status = 'deferred') AS deferred,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'failed') AS failed
FROM postline.delivery_events FINAL
GROUP BY server, api_user, hour, recipient_domain;

-- Attempts only: an MX host is known once a sender tried it.
CREATE TABLE IF NOT EXISTS postline.stats_mx_hourly
(
    server LowCardinality(String),
    api_user LowCardinality(String),
    hour DateTime('UTC'),
    mx_host LowCardinality(String),
    deferred UInt64,
    succeeded UInt64,
    failed UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (server, api_user, hour, mx_host)
TTL hour + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS postline.stats_mx_hourly_mv TO postline.stats_mx_hourly AS
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    mx_host,
    countIf(status = 'deferred') AS deferred,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'failed') AS failed
FROM postline.delivery_events
WHERE mx_host != ''
GROUP BY server, api_user, hour, mx_host;

INSERT INTO postline.stats_mx_hourly
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    mx_host,
    countIf(status = 'deferred') AS deferred,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'failed') AS failed
FROM postline.delivery_events FINAL
WHERE mx_host != ''
GROUP BY server, api_user, hour, mx_host;

CREATE TABLE IF NOT EXISTS postline.stats_senders_hourly
(
    server LowCardinality(String),
    api_user LowCardinality(String),
    hour DateTime('UTC'),
    envelope_from String,
    queued UInt64,
    deferred UInt64,
    succeeded UInt64,
    failed UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (server, api_user, hour, envelope_from)
TTL hour + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS postline.stats_senders_hourly_mv
TO postline.stats_senders_hourly AS
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    envelope_from,
    countIf(status = 'queued') AS queued,
    countIf(status = 'deferred') AS deferred,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'failed') AS failed
FROM postline.delivery_events
GROUP BY server, api_user, hour, envelope_from;

INSERT INTO postline.stats_senders_hourly
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    envelope_from,
    countIf(status = 'queued') AS queued,
    countIf(status = 'deferred') AS deferred,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'failed') AS failed
FROM postline.delivery_events FINAL
GROUP BY server, api_user, hour, envelope_from;

-- Every attempt's SMTP reply (code and enhanced status).
CREATE TABLE IF NOT EXISTS postline.stats_replies_hourly
(
    server LowCardinality(String),
    api_user LowCardinality(String),
    hour DateTime('UTC'),
    reply_code UInt16,
    enhanced_status LowCardinality(String),
    replies UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (server, api_user, hour, reply_code, enhanced_status)
TTL hour + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS postline.stats_replies_hourly_mv
TO postline.stats_replies_hourly AS
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    reply_code,
    enhanced_status,
    count() AS replies
FROM postline.delivery_events
WHERE reply_code != 0
GROUP BY server, api_user, hour, reply_code, enhanced_status;

INSERT INTO postline.stats_replies_hourly
SELECT
    server,
    api_user,
    toStartOfHour(at) AS hour,
    reply_code,
    enhanced_status,
    count() AS replies
FROM postline.delivery_events FINAL
WHERE reply_code != 0
GROUP BY server, api_user, hour, reply_code, enhanced_status;

-- The error log by error status and destination domain.
CREATE TABLE IF NOT EXISTS postline.stats_errors_hourly
(
    server LowCardinality(String),
    api_user LowCardinality(String),
    hour DateTime('UTC'),
    recipient_domain LowCardinality(String),
    status UInt16,
    errors UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (server, api_user, hour, recipient_domain, status)
TTL hour + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS postline.stats_errors_hourly_mv
TO postline.stats_errors_hourly AS
SELECT
    server,
    api_user,
    toStartOfHour(created) AS hour,
    recipient_domain,
    status,
    count() AS errors
FROM postline.error_log
GROUP BY server, api_user, hour, recipient_domain, status;

INSERT INTO postline.stats_errors_hourly
SELECT
    server,
    api_user,
    toStartOfHour(created) AS hour,
    recipient_domain,
    status,
    count() AS errors
FROM postline.error_log FINAL
GROUP BY server, api_user, hour, recipient_domain, status;
