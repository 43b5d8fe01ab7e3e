"""Which TLS an outgoing delivery uses: the policy's words for it, the contract's values, and
the rule that picks one.

* ``opportunistic`` (the default): STARTTLS when offered, the certificate unchecked (RFC 7435).
* ``required``: STARTTLS with a certificate valid for the host, or the attempt is deferred.
* ``none``: plain text (a route to a trusted relay without TLS).

A route says its mode (``routes[].tls``); the server's ``require_tls`` domains make a delivery
``required`` whatever its route says: the stricter setting wins. The scheduler puts the route's
mode on the task, the sender applies ``require_tls`` (and the route, when the task has none).
How each mode is carried out (the TLS contexts) is the sender's: ``postline.sender.tls``.
"""

from __future__ import annotations

from postline.common.policy import Route, Server, TlsMode
from postline.v1 import delivery_pb2
from postline.v1.delivery_pb2 import TlsMode as TaskTlsMode

NONE = delivery_pb2.TLS_MODE_NONE
OPPORTUNISTIC = delivery_pb2.TLS_MODE_OPPORTUNISTIC
REQUIRED = delivery_pb2.TLS_MODE_REQUIRED

TLS_MODES: dict[TlsMode, TaskTlsMode.ValueType] = {
    TlsMode.NONE: NONE,
    TlsMode.OPPORTUNISTIC: OPPORTUNISTIC,
    TlsMode.REQUIRED: REQUIRED,
}
_NAMES = {value: mode.value for mode, value in TLS_MODES.items()}


def route_tls(route: Route | None) -> TaskTlsMode.ValueType:
    """The mode a policy route asks for; without a route, opportunistic."""
    return OPPORTUNISTIC if route is None else TLS_MODES[route.tls]


def tls_mode_name(mode: TaskTlsMode.ValueType) -> str:
    """The policy's word for a task's mode (``opportunistic`` when unset)."""
    return _NAMES.get(mode, TlsMode.OPPORTUNISTIC.value)


def tls_mode(mode: TaskTlsMode.ValueType, domain: str, server: Server) -> TaskTlsMode.ValueType:
    """The mode a delivery to ``domain`` uses: the task's (from its route), made ``required``
    when the server's ``require_tls`` names the recipient domain."""
    if server.requires_tls(domain):
        return REQUIRED
    if mode == delivery_pb2.TLS_MODE_UNSPECIFIED:
        return OPPORTUNISTIC
    return mode
