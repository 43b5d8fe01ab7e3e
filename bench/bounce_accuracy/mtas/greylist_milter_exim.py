"""Exim's notices of what milter-greylist, run for real, answered (round 79): the receiving side
of ``greylist_milter_postfix`` (its ``RECEIVER``: milter-greylist built from its repository's
snapshot behind a receiving Postfix, our DNS server) with Debian's Exim, unpacked and run as
round 21's (``exim.behind``) under ``/tmp/r79-greylist/exim``, as the sending MTA: each
recipient domain goes to the receiving instance's listener from
:data:`greylist_milter_postfix.CLIENT`, ``sender.test`` to the capture server. Delay warning
after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are
``greylist_milter_exim`` in ``greylist_milter_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, greylist_milter_postfix
from .destination import Destination
from .rows import Row

MTA = "greylist_milter_exim"
ROOT = greylist_milter_postfix.ROOT / "exim"
PORT = 19851  # round 79's ports
LOCAL = "rowan-x-r79.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(greylist_milter_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
