"""Webhooks as every service sees them: endpoints of the policy, their queues, signatures.

The reports service posts (``postline.reports.webhooks``); bounce publishes incoming mail to
the inbound endpoints' queues; both name those queues the same way, from here.
"""

from postline.common.webhooks.endpoints import (
    Endpoint,
    EndpointKind,
    event_endpoints,
    inbound_endpoint,
)
from postline.common.webhooks.signing import SignatureKey, new_secret

__all__ = [
    "Endpoint",
    "EndpointKind",
    "SignatureKey",
    "event_endpoints",
    "inbound_endpoint",
    "new_secret",
]
