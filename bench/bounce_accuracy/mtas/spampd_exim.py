"""Exim's notices of what spampd, run for real, answered (round 79): the receiving side
of ``spampd_postfix`` (its ``RECEIVER``: Debian's spampd, SpamAssassin in an SMTP proxy, in
front of a receiving Postfix) with Debian's Exim, unpacked and run as
round 21's (``exim.behind``) under ``/tmp/r79-spampd/exim``, as the sending MTA: each
recipient domain goes to the spampd instance from
:data:`spampd_postfix.CLIENT`, ``sender.test`` to the capture server. Delay warning
after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are
``spampd_exim`` in ``greylist_milter_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, spampd_postfix
from .destination import Destination
from .rows import Row

MTA = "spampd_exim"
ROOT = spampd_postfix.ROOT / "exim"
PORT = 19861  # round 79's ports
LOCAL = "elm-x-r79.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(spampd_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
