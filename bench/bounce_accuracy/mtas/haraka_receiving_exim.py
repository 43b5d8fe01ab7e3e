"""Exim's notices of a receiving Haraka's own plugins (round 64): the receiving Haraka instances
of ``haraka_receiving_postfix`` (its ``RECEIVER``) with Debian's Exim, unpacked and run as round
21's (``exim.behind``: ``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under
``/tmp/r64-haraka/exim``, as the sending MTA, its transports bound to its own loopback address:
each recipient domain goes to its instance, ``sender.test`` and the three sender domains of the
DNS cases to the capture server. Delay warning after 20 s, retries given up after 60 s
(``exim.MAIN``, ``exim.RETRY``). The cases are ``haraka_receiving_exim`` in
``haraka_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, haraka_receiving_postfix
from .destination import Destination
from .rows import Row

MTA = "haraka_receiving_exim"
ROOT = haraka_receiving_postfix.ROOT / "exim"
PORT = 18626  # 2526 + the helper's test port offset (16100)
LOCAL = "pruneau-x-r64.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(haraka_receiving_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
