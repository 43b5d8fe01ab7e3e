"""SMTP replies of the relay, as named constants (RFC 5321 codes, RFC 3463 enhanced status)."""

from __future__ import annotations

QUEUED = "250 2.0.0 Ok: queued as {message_id}"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
RELAY_DENIED = "554 5.7.1 Relay access denied"
BAD_ADDRESS = "553 5.1.3 {reason}"
NO_RECIPIENTS = "554 5.5.1 Error: no valid recipients"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds fixed limit"
BROKER_UNAVAILABLE = "451 4.3.0 Temporary failure: queue unavailable, try again later"
LOCAL_ERROR = "451 4.3.0 Temporary local error, try again later"
