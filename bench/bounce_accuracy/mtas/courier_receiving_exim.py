"""Exim's notices of a receiving Courier's own checks (round 66): the receiving Courier of
``courier_receiving_postfix`` (its ``RECEIVER``) with Debian's Exim, unpacked and run as round
21's (``exim.behind``: ``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under
``/tmp/r66-courier/exim``, as the sending MTA, its transports bound to its own loopback address:
each recipient domain goes to its Courier daemon, ``sender.test`` and the sender domains of the
DNS and SPF cases to the capture server. Delay warning after 20 s, retries given up after 60 s
(``exim.MAIN``, ``exim.RETRY``). The cases are ``courier_receiving_exim`` in
``courier_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import courier_receiving_postfix, exim
from .destination import Destination
from .rows import Row

MTA = "courier_receiving_exim"
ROOT = courier_receiving_postfix.ROOT / "exim"
PORT = 18826  # 2526 + the helper's test port offset (16300)
LOCAL = "medlar-x-r66.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(courier_receiving_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
