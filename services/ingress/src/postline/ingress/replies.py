"""SMTP replies of the relay, as named constants (RFC 5321 codes, RFC 3463 enhanced status).

Every 2xx, 4xx and 5xx reply carries an enhanced status code (RFC 2034 §3, announced with
ENHANCEDSTATUSCODES), except the greeting and the HELO/EHLO replies, which RFC 2034 exempts.
The replies kept from aiosmtpd (the relay's protocol until issue #13's round 7) lack them;
`with_enhanced_status` adds one from the reply code.
"""

from __future__ import annotations

import re

# -- the transaction ----------------------------------------------------------------------
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
QUEUED = "250 2.0.0 Ok: queued as {message_id}"

# -- HELO / EHLO (RFC 2034 §3: no enhanced status here) -------------------------------------
SYNTAX_HELO = "501 Syntax: HELO hostname"
SYNTAX_EHLO = "501 Syntax: EHLO hostname"

# -- connection (RFC 5321 §3.1, §3.8) -------------------------------------------------------
# 421 closes the channel; a 554 greeting keeps it open until QUIT (RFC 5321 §3.1).
TOO_MANY_CONNECTIONS = "421 4.7.0 {hostname} Error: too many connections, try again later"
CLIENT_NOT_ALLOWED = "554 5.7.1 {hostname} Error: connections from {ip} are not allowed"
REFUSED_SESSION = "503 5.5.1 Error: bad sequence of commands, only QUIT is accepted"
BYE = "221 2.0.0 Bye"

# -- authentication (RFC 4954 §6) -----------------------------------------------------------
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
ENCRYPTION_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
AUTH_UNAVAILABLE = "454 4.7.0 Temporary authentication failure"
# RFC 4954 §6: 454 4.7.0, temporary; the credentials are not even checked meanwhile.
AUTH_THROTTLED = "454 4.7.0 Error: too many failed authentications, try again in {seconds} seconds"

# -- policy ---------------------------------------------------------------------------------
# Postfix answers its client message rate limit the same way: the session goes on and the
# client retries the transaction later (RFC 3463 4.7.1: delivery not authorized, temporary).
RATE_EXCEEDED = "450 4.7.1 Error: too much mail from {ip}, try again later"

# -- addresses and parameters ---------------------------------------------------------------
BAD_ADDRESS = "553 5.1.3 {reason}"
SYNTAX_MAIL = "501 5.5.4 Syntax: MAIL FROM:<address> [SP <mail-parameters>]"
SYNTAX_RCPT = "501 5.5.4 Syntax: RCPT TO:<address>"
PARAMETERS_WITHOUT_EHLO = "501 5.5.4 Error: parameters need EHLO"
BAD_PARAMETER = "501 5.5.4 Error: malformed parameter {name}"
# RFC 3461's parameters (NOTIFY, ORCPT, RET, ENVID): the reason says what is wrong.
BAD_DSN_PARAMETER = "501 5.5.4 Error: bad {name} parameter: {reason}"
REPEATED_PARAMETER = "501 5.5.4 Error: {name} parameter given twice"
UNKNOWN_PARAMETER = "555 5.5.4 Error: {name} parameter not recognized or not implemented"
NESTED_MAIL = "503 5.5.1 Error: nested MAIL command"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
SYNTAX_DATA = "501 5.5.4 Syntax: DATA"
SYNTAX_VRFY = "501 5.5.4 Syntax: VRFY <address>"
# RFC 5321 §3.5.3: 252 when the server will not verify but would accept the address.
CANNOT_VRFY = "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"
NOT_UTF8 = "501 5.5.2 Error: the argument is not UTF-8"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
LINE_TOO_LONG = "500 5.5.2 Error: line too long (RFC 5321 4.5.3.1.6)"

# -- limits ---------------------------------------------------------------------------------
# RFC 5321 §4.5.3.1.10: a client that sees 452 for too many recipients sends the rest later.
TOO_MANY_RECIPIENTS = "452 4.5.3 Error: too many recipients"
MESSAGE_TOO_BIG = "552 5.3.4 Error: message size exceeds fixed maximum message size"
NO_RECIPIENTS = "554 5.5.1 Error: no valid recipients"

# -- temporary failures: the client keeps the message and retries ----------------------------
BROKER_UNAVAILABLE = "451 4.3.0 Error: queue unavailable, try again later"
LOCAL_ERROR = "451 4.3.0 Error: temporary local problem, try again later"

# Enhanced status for aiosmtpd's replies, by reply code (RFC 3463 §3.5 protocol errors).
_BY_CODE = {
    "221": "2.0.0",
    "250": "2.0.0",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "552": "5.3.4",
    "554": "5.7.0",
    "555": "5.5.4",
}
_STARTTLS_READY = "220 Ready to start TLS"
# RFC 5321 §4.2: reply text is printable US-ASCII and HT (lines joined by CRLF).
_UNPRINTABLE = re.compile(r"[^\t\x20-\x7e]")  # aiosmtpd's, RFC 3207 §4
_HAS_STATUS = re.compile(r"\d{3} [245]\.\d{1,3}\.\d{1,3}(?: |$)")


def with_enhanced_status(reply: str) -> str:
    """``reply`` with an enhanced status after its code when it has none and should have one.

    The greeting (220), multi-line replies and 3xx challenges keep their plain form (the relay
    sends its HELO/EHLO replies, which RFC 2034 exempts, without this).
    """
    if reply == _STARTTLS_READY:
        return "220 2.0.0 Ready to start TLS"
    if reply[3:4] != " " or _HAS_STATUS.match(reply):
        return reply
    status = _BY_CODE.get(reply[:3])
    return f"{reply[:3]} {status} {reply[4:]}" if status else reply


def printable(reply: str) -> str:
    """``reply`` with whatever is not printable US-ASCII replaced by ``?``: aiosmtpd echoes
    parts of a command (an unknown verb, an address) that may hold any byte the client sent,
    and a reply must stay a reply (not a control character, not a byte that cannot be
    encoded)."""
    return "\r\n".join(_UNPRINTABLE.sub("?", line) for line in reply.split("\r\n"))
