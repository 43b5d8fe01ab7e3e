-- The console's state, in the reports service's ClickHouse so that every reports replica sees
-- the same and a restart loses nothing.
--
-- console_accounts: one row per change of an account; the latest row of an email wins
-- (version = change time in microseconds). The policy file's accounts are the initial ones:
-- a row records the digest of the policy entry it started from, and when the file's entry
-- changes (a new password hash, say) the file wins again (see console/accounts.py).

CREATE TABLE IF NOT EXISTS postline.console_accounts
(
    email String,
    role LowCardinality(String),
    password_hash String,
    totp_secret String,
    totp_reset UInt8,
    language LowCardinality(String),
    timezone String,
    disabled UInt8,
    policy_digest String,
    changed DateTime64(3, 'UTC'),
    changed_by String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY email;

-- console_sessions: a session per log-in, found by the SHA-256 of its cookie (the cookie
-- itself is never stored). stage 'code' waits for the one-time code of a TOTP account;
-- 'full' is logged in. Logging out writes the row again with revoked = 1.

CREATE TABLE IF NOT EXISTS postline.console_sessions
(
    token_hash String,
    email String,
    stage LowCardinality(String),
    csrf String,
    created DateTime64(3, 'UTC'),
    expires DateTime64(3, 'UTC'),
    revoked UInt8,
    ip String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY token_hash
TTL toDateTime(expires) + INTERVAL 1 DAY;

-- operation_log: every log-in, failed log-in, log-out and change made through the console or
-- the reports API (who, when, from which address, what). Append-only: nothing in Postline
-- updates or deletes a row; rows go with the retention like the other logs.

CREATE TABLE IF NOT EXISTS postline.operation_log
(
    at DateTime64(3, 'UTC'),
    id String,
    actor String,
    ip String,
    action LowCardinality(String),
    target String,
    detail String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (at, id)
TTL toDateTime(at) + INTERVAL {retention_days} DAY;

-- The console's error detail finds one error-log row by its id.

ALTER TABLE postline.error_log
    ADD INDEX IF NOT EXISTS event_id_bf event_id TYPE bloom_filter(0.01) GRANULARITY 1;

ALTER TABLE postline.error_log MATERIALIZE INDEX event_id_bf;
