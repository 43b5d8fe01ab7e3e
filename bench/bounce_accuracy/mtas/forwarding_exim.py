"""Exim's notices of forwarding failures made by a receiving Postfix and Sendmail (round 78):
the receiving side of ``forwarding_postfix`` (its ``RECEIVER``) with Debian's Exim, unpacked
and run as round 21's (``exim.behind``) under ``/tmp/r78-forwarding/exim``, as the sending MTA,
its transports bound to its own loopback address: each recipient domain goes to the receiving
Postfix or Sendmail, ``sender.test`` to the capture server; the receiving Postfix relays the
forwarded mail back through it (``relay_from_hosts``, 127.0.0.1). Delay warning after 20 s,
retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are ``forwarding_exim``
in ``forwarding_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, forwarding_postfix
from .destination import Destination
from .rows import Row

MTA = "forwarding_exim"
ROOT = forwarding_postfix.ROOT / "exim"
PORT = 19826  # round 78's block (19825-19849)
LOCAL = "medlar-x-r78.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(forwarding_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
