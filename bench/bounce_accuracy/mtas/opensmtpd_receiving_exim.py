"""Exim's notices of a receiving OpenSMTPD's own rules and filters (round 65): the receiving
OpenSMTPD of ``opensmtpd_receiving_postfix`` (its ``RECEIVER``) with Debian's Exim, unpacked and
run as round 21's (``exim.behind``: ``exim.unpack``, ``exim.configure_sending``, ``exim.run``)
under ``/tmp/r65-opensmtpd/exim``, as the sending MTA, its transports bound to its own loopback
address: each recipient domain goes to its listener, ``sender.test`` to the capture server.
Delay warning after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases
are ``opensmtpd_receiving_exim`` in ``opensmtpd_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, opensmtpd_receiving_postfix
from .destination import Destination
from .rows import Row

MTA = "opensmtpd_receiving_exim"
ROOT = opensmtpd_receiving_postfix.ROOT / "exim"
PORT = 18726  # 2526 + the helper's test port offset (16200)
LOCAL = "quince-x-r65.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(
        opensmtpd_receiving_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination
    )
