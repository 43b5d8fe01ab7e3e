"""Exim's notices of a receiving XMail's own checks (round 76): the receiving XMail daemons of
``xmail_receiving_postfix`` (its ``RECEIVER``) with Debian's Exim, unpacked and run as round
21's (``exim.behind``) under ``/tmp/r76-xmail/exim``, as the sending MTA, its transports bound
to its own loopback address: each recipient domain goes to its XMail daemon, ``sender.test``
and the sender domain of the DNS case to the capture server. Delay warning after 20 s, retries
given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are ``xmail_receiving_exim`` in
``older_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, xmail_receiving_postfix
from .destination import Destination
from .rows import Row

MTA = "xmail_receiving_exim"
ROOT = xmail_receiving_postfix.ROOT / "exim"
PORT = 19776  # round 76's block (19775-19799)
LOCAL = "medlar-x-r76.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(xmail_receiving_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
