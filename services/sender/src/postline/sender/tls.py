"""TLS for outgoing SMTP: which mode a delivery uses and the contexts for each.

* ``opportunistic`` (the default): STARTTLS when the server offers it, without checking its
  certificate (RFC 7435: encryption against passive eavesdropping, as MTAs do); when the
  handshake fails the delivery goes on in plain text, since refusing to deliver would protect
  nothing an attacker could not strip anyway.
* ``required`` (a route's ``tls: required`` or the server's ``require_tls`` domains): STARTTLS
  with a certificate that chains to the trust store (the system's, or ``POSTLINE_TLS_CA_FILE``
  alone when set) and names the MX host (or the route's host). Without it the attempt is
  deferred with 4.7.4 (not offered) or 4.7.5 (handshake or certificate failure).
* ``none``: plain text (a route to a trusted relay that has no TLS).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from postline.common.policy import Server
from postline.v1 import delivery_pb2
from postline.v1.delivery_pb2 import TlsMode

NONE = delivery_pb2.TLS_MODE_NONE
OPPORTUNISTIC = delivery_pb2.TLS_MODE_OPPORTUNISTIC
REQUIRED = delivery_pb2.TLS_MODE_REQUIRED


TLS_MODES: dict[str, TlsMode.ValueType] = {
    "none": NONE,
    "opportunistic": OPPORTUNISTIC,
    "required": REQUIRED,
}


def tls_mode(mode: TlsMode.ValueType, domain: str, server: Server) -> TlsMode.ValueType:
    """The task's mode (the scheduler copies it from the route), made ``required`` when the
    server's ``require_tls`` names the recipient domain: the stricter setting wins."""
    if server.requires_tls(domain):
        return REQUIRED
    if mode == delivery_pb2.TLS_MODE_UNSPECIFIED:
        return OPPORTUNISTIC
    return mode


class TlsContexts:
    """Built once per process: loading a trust store is slow, and contexts are shareable."""

    def __init__(self, ca_file: Path | None = None) -> None:
        self.unverified = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.unverified.check_hostname = False
        self.unverified.verify_mode = ssl.CERT_NONE
        self.verified = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None
        )

    def for_mode(self, mode: TlsMode.ValueType) -> ssl.SSLContext:
        return self.verified if mode == REQUIRED else self.unverified
