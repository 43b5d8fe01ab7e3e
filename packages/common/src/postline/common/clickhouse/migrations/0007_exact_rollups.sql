-- Exactly-once events: what RabbitMQ delivers at least once is written, and counted by the
-- rollups, once.
--
-- Until now a batch retried in place carried the same deduplication token and was dropped,
-- but an event redelivered in another batch (reports lost its connection or crashed between a
-- write and its ack; a producer sent an event twice) was written again: the logs merged it
-- away (ReplacingMergeTree), the rollups counted it twice (+135 queued, +127 succeeded over
-- 1,500 deliveries after a broker restart).
--
-- Now the input views keep back every event already stored: an event whose id is in
-- delivery_events (error_log) is not inserted again, nor one that occurs twice in the same
-- insert, so the logs and every view fed by them (delivery_log, the rollups) see it once.
-- Events ids are stable (postline.common.events): the same event made twice by a service
-- that handled its input twice has the same id too.
--
-- A batch retried after a failed insert must still reach the tables it did not reach before,
-- so rows stored by an insert with the same deduplication token are not kept back: that
-- insert's own blocks are dropped by ClickHouse's deduplication (table by table, in the
-- dependent views too). Each row records the token of the insert that stored it.
--
-- The lookup reads the primary key's range of the batch's days and delivery ids (error rows:
-- their days and the delivery bloom filter), a small part of the table; its cost on the
-- reports bench is in bench/README.md.
--
-- The reports service is stopped while migrations run.

ALTER TABLE postline.delivery_events ADD COLUMN IF NOT EXISTS ingest_token String DEFAULT '';

ALTER TABLE postline.error_log ADD COLUMN IF NOT EXISTS ingest_token String DEFAULT '';

DROP VIEW IF EXISTS postline.delivery_events_input_mv;

CREATE MATERIALIZED VIEW postline.delivery_events_input_mv
TO postline.delivery_events AS
SELECT
    event_id,
    delivery_id,
    message_id,
    transform(status, [1, 2, 3, 4], ['queued', 'deferred', 'succeeded', 'failed'], '') AS status,
    fromUnixTimestamp64Milli(at_seconds * 1000 + intDiv(at_nanos, 1000000), 'UTC') AS at,
    fromUnixTimestamp64Milli(
        accepted_at_seconds * 1000 + intDiv(accepted_at_nanos, 1000000), 'UTC'
    ) AS accepted_at,
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
    source_ip,
    error_status,
    if(
        next_attempt_at_seconds = 0 AND next_attempt_at_nanos = 0,
        NULL,
        fromUnixTimestamp64Milli(
            next_attempt_at_seconds * 1000 + intDiv(next_attempt_at_nanos, 1000000), 'UTC'
        )
    ) AS next_attempt_at,
    trace_id,
    getSetting('insert_deduplication_token') AS ingest_token
FROM postline.delivery_events_input
-- (`status` here is the name made by transform: '' for no known status)
WHERE throwIf(
    event_id = '' OR delivery_id = '' OR status = '' OR at_seconds <= 0,
    'a delivery event without event_id, delivery_id, status or time'
) = 0
AND event_id NOT IN (
    SELECT event_id
    FROM postline.delivery_events
    WHERE toDate(at) >= (
            SELECT toDate(toDateTime(min(at_seconds), 'UTC')) - 1
            FROM postline.delivery_events_input
        )
        AND delivery_id IN (SELECT delivery_id FROM postline.delivery_events_input)
        AND ingest_token != getSetting('insert_deduplication_token')
)
LIMIT 1 BY event_id;

DROP VIEW IF EXISTS postline.error_events_input_mv;

CREATE MATERIALIZED VIEW postline.error_events_input_mv
TO postline.error_log AS
SELECT
    event_id,
    delivery_id,
    message_id,
    fromUnixTimestamp64Milli(created_seconds * 1000 + intDiv(created_nanos, 1000000), 'UTC')
        AS created,
    status,
    `from` AS envelope_from,
    `to` AS recipient,
    header_message_id,
    return_path,
    subject,
    api_data,
    reason,
    transform(source, [1, 2, 3], ['smtp_reply', 'bounce_mail', 'policy'], 'unknown') AS source,
    permanent,
    reply_code,
    enhanced_status,
    server,
    api_user,
    trace_id,
    getSetting('insert_deduplication_token') AS ingest_token
FROM postline.error_events_input
WHERE throwIf(event_id = '' OR created_seconds <= 0, 'an error event without event_id or time') = 0
AND event_id NOT IN (
    SELECT event_id
    FROM postline.error_log
    WHERE created >= (
            SELECT toDateTime(min(created_seconds), 'UTC') - INTERVAL 1 DAY
            FROM postline.error_events_input
        )
        AND delivery_id IN (SELECT delivery_id FROM postline.error_events_input)
        AND ingest_token != getSetting('insert_deduplication_token')
)
LIMIT 1 BY event_id;
