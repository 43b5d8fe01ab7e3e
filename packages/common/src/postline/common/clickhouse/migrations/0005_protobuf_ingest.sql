-- Ingest without Python in the way: reports hands ClickHouse the events' protobuf bytes as the
-- broker delivered them (FORMAT ProtobufList, the schema sent with the insert), into two Null
-- tables whose columns are named after the protobuf fields (a Timestamp `at` arrives as
-- at_seconds and at_nanos; an enum is its number). A materialized view per table turns the fields into the rows of
-- delivery_events and error_log, which feed the delivery log and the rollups as before.
-- Building the rows in Python (decode, columns, serialization) cost about 13 us per event, half
-- of all ingest CPU; ClickHouse parses protobuf in a fraction of that (bench/README.md).
--
-- An event no row can be made of (no event_id, delivery_id, status or time: a row dated 1970
-- would expire at once) fails the whole insert (throwIf) before anything is written; reports then finds it in Python and
-- dead-letters its broker message, and writes the rest.

CREATE TABLE IF NOT EXISTS postline.delivery_events_input
(
    event_id String,
    delivery_id String,
    message_id String,
    status Int32,
    at_seconds Int64,
    at_nanos Int32,
    server String,
    api_user String,
    envelope_from String,
    recipient String,
    recipient_domain String,
    subject String,
    api_data String,
    return_path String,
    header_message_id String,
    attempt UInt32,
    reply_code UInt32,
    enhanced_status String,
    reason String,
    mx_host String,
    source_ip String,
    error_status UInt32,
    next_attempt_at_seconds Int64,
    next_attempt_at_nanos Int32,
    trace_id String,
    accepted_at_seconds Int64,
    accepted_at_nanos Int32
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS postline.delivery_events_input_mv
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
    trace_id
FROM postline.delivery_events_input
-- (`status` here is the name made by transform: '' for no known status)
WHERE throwIf(
    event_id = '' OR delivery_id = '' OR status = '' OR at_seconds <= 0,
    'a delivery event without event_id, delivery_id, status or time'
) = 0;

CREATE TABLE IF NOT EXISTS postline.error_events_input
(
    event_id String,
    delivery_id String,
    message_id String,
    created_seconds Int64,
    created_nanos Int32,
    status Int32,
    `from` String,
    `to` String,
    header_message_id String,
    return_path String,
    subject String,
    api_data String,
    reason String,
    source Int32,
    permanent Bool,
    reply_code UInt32,
    enhanced_status String,
    server String,
    api_user String,
    trace_id String
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS postline.error_events_input_mv
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
    trace_id
FROM postline.error_events_input
WHERE throwIf(event_id = '' OR created_seconds <= 0, 'an error event without event_id or time') = 0;
