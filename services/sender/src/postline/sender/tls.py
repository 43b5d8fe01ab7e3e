"""The TLS contexts of outgoing SMTP, one per way of checking the server.

Which mode a delivery uses is ``postline.common.tls_modes`` (the scheduler reads the same
rule). ``opportunistic`` encrypts without checking the certificate (RFC 7435: against passive
eavesdropping, as MTAs do; a failed handshake goes on in plain text, since refusing would
protect nothing an attacker could not strip anyway). ``required`` needs a certificate that
chains to the trust store (the system's, or ``POSTLINE_TLS_CA_FILE`` alone when set) and names
the MX host (or the route's host); without it the attempt is deferred with 4.7.4 (not offered)
or 4.7.5 (handshake or certificate failure).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from postline.common.tls_modes import REQUIRED
from postline.v1.delivery_pb2 import TlsMode


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
