"""SMTP replies as the sender reports them, and the replies it makes up itself.

A reply is what decides an attempt's outcome: 2xx succeeded; 4xx (and every local reason for
not getting an answer: connection failure, timeout, TLS that policy requires but cannot be
had) deferred; 5xx failed. Local replies use the code and enhanced status (RFC 3463) an MTA
would put in a DSN for the same reason, so the bounce service classifies them like any reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postline.v1 import delivery_pb2

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")

# Stages (DeliveryResult.stage): where the attempt ended.
DNS = "dns"
CONNECT = "connect"
EHLO = "ehlo"
STARTTLS = "starttls"
MAIL = "mail"
RCPT = "rcpt"
DATA = "data"
LOCAL = "local"

# Local replies: (code, text template). Permanent ones fail the delivery, the rest defer it.
NO_SUCH_DOMAIN = (550, "5.1.2 {domain}: no such domain (NXDOMAIN)")
NULL_MX = (556, "5.1.10 {domain}: the domain accepts no mail (null MX, RFC 7505)")
NO_MAIL_HOST_ADDRESS = (550, "5.4.4 {domain}: no address for any mail host ({hosts})")
DNS_FAILED = (451, "4.4.3 {domain}: DNS lookup failed: {error}")
NO_ROUTE_ADDRESS = (451, "4.4.3 {host}: cannot resolve the route's host: {error}")
CONNECT_FAILED = (421, "4.4.1 connection to {host} failed: {error}")
TIMED_OUT = (421, "4.4.2 {host}: timeout after {seconds:g}s waiting for the reply to {step}")
DISCONNECTED = (421, "4.4.2 {host} closed the connection at {step}")
PROTOCOL_ERROR = (421, "4.5.0 {host}: unexpected SMTP exchange at {step}: {error}")
# A required-TLS failure is usually temporary (a certificate renewed late, a load balancer
# flapping): defer, so retries go on until the resend period ends the delivery (status 3).
TLS_NOT_OFFERED = (421, "4.7.4 TLS is required but {host} does not offer STARTTLS")
TLS_FAILED = (421, "4.7.5 TLS is required but the TLS handshake with {host} failed: {error}")
DKIM_KEY_UNUSABLE = (451, "4.3.5 DKIM key for {domain} is unusable: {error}")
UNKNOWN_SERVER = (451, "4.3.5 server {server!r} is not in the policy")
LOCAL_ERROR = (451, "4.3.0 local error in the sender ({error}); will retry")


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to one step. ``local`` ones were made up by the sender, not said by a server."""

    code: int
    text: str
    stage: str
    local: bool = False

    @classmethod
    def make(cls, template: tuple[int, str], stage: str, **values: object) -> Reply:
        code, text = template
        return cls(code, text.format(**values), stage, local=True)

    @property
    def enhanced_status(self) -> str:
        match = _ENHANCED.match(self.text)
        return match[1] if match else ""

    @property
    def outcome(self) -> delivery_pb2.Outcome.ValueType:
        if 200 <= self.code < 300:
            return delivery_pb2.OUTCOME_SUCCEEDED
        if 500 <= self.code < 600:
            return delivery_pb2.OUTCOME_FAILED
        return delivery_pb2.OUTCOME_DEFERRED

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def closes_session(self) -> bool:
        """421 means the server is closing the connection (RFC 5321 §3.8)."""
        return self.code == 421

    def __str__(self) -> str:
        return f"{self.code} {self.text}"
