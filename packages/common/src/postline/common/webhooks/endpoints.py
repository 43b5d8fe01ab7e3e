"""The policy's webhook endpoints, each with a stable id that names its queue.

An endpoint is ``servers.<name>.webhooks[i]`` (events of that server) or ``inbound[i]``
(incoming mail for a domain). Its id is made of its kind, its owner (the server or the
domain) and a digest of its URL, so it stays the same across restarts and replicas and a
changed URL gets a queue of its own (the old queue keeps what was not delivered yet; see the
README on removing an endpoint).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from postline.common.broker.topology import webhook_key, webhook_queue
from postline.common.policy import Policy
from postline.common.policy.model import Inbound, InboundFormat
from postline.common.policy.secrets import SecretRef

# Queue names are at most 255 bytes; a domain may be 253.
_MAX_OWNER = 100


class EndpointKind(StrEnum):
    EVENTS = "events"  # a server's event webhook
    INBOUND = "inbound"  # the inbound webhook of a domain


@dataclass(frozen=True)
class Endpoint:
    kind: EndpointKind
    owner: str  # server name, or the inbound domain
    url: str
    secret: SecretRef
    events: frozenset[str] = frozenset()  # what an events endpoint subscribed to
    raw: bool = False  # an inbound endpoint wants the raw message rather than its parts

    @property
    def id(self) -> str:
        digest = hashlib.sha256(f"{self.kind}\0{self.owner}\0{self.url}".encode()).hexdigest()
        return f"{self.kind}.{self.owner[:_MAX_OWNER]}.{digest[:12]}"

    @property
    def queue(self) -> str:
        return webhook_queue(self.id)

    @property
    def routing_key(self) -> str:
        return webhook_key(self.id)

    @property
    def label(self) -> str:
        """The URL without credentials, query or fragment: for logs, metrics and the API."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def wants(self, event_type: str) -> bool:
        return event_type in self.events


def event_endpoints(policy: Policy) -> list[Endpoint]:
    """Every server's event webhooks, in file order."""
    return [
        Endpoint(
            EndpointKind.EVENTS,
            name,
            hook.url,
            hook.secret,
            events=frozenset(str(e) for e in hook.events),
        )
        for name, server in policy.servers.items()
        for hook in server.webhooks
    ]


def inbound_endpoint(entry: Inbound) -> Endpoint:
    return Endpoint(
        EndpointKind.INBOUND,
        str(entry.domain),
        entry.url,
        entry.secret,
        raw=entry.format is InboundFormat.RAW,
    )


def inbound_endpoints(policy: Policy) -> list[Endpoint]:
    return [inbound_endpoint(entry) for entry in policy.inbound]
